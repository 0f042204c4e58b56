//! Redis's own count of the commands it ran (`INFO commandstats`), read
//! through the same Redis client the server uses.

use anyhow::Context;

/// The calls Redis counted, as two sums.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Calls {
    /// Round trips: scripts called (`EVALSHA`, `EVAL`, `SCRIPT LOAD`);
    /// every call qrlogin makes is one.
    pub round_trips: u64,
    /// Every command, those scripts ran inside included.
    pub commands: u64,
}

/// `INFO commandstats` of the Redis at `url` (any URL the server takes:
/// `redis://HOST:PORT`, `redis+unix:///PATH`).
pub async fn calls(url: &str) -> anyhow::Result<Calls> {
    let client = redis::Client::open(url).with_context(|| url.to_owned())?;
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .with_context(|| url.to_owned())?;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut connection)
        .await
        .with_context(|| format!("INFO commandstats at {url}"))?;
    Ok(parse(&info))
}

/// The two sums of an `INFO commandstats` answer.
pub fn parse(info: &str) -> Calls {
    let mut calls = Calls::default();
    for line in info.lines() {
        let Some((name, stats)) = line
            .strip_prefix("cmdstat_")
            .and_then(|l| l.split_once(':'))
        else {
            continue;
        };
        let Some(n) = stats
            .split(',')
            .find_map(|s| s.strip_prefix("calls="))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        // The statistics' own reading is not qrlogin's.
        if name == "info" {
            continue;
        }
        calls.commands += n;
        if matches!(name, "evalsha" | "eval" | "script|load") {
            calls.round_trips += n;
        }
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the test Redis, where the test command runs one.
    #[tokio::test]
    async fn reads_a_live_redis() {
        let Ok(url) = std::env::var("QRLOGIN_TEST_REDIS") else {
            eprintln!("note: QRLOGIN_TEST_REDIS is not set; skipping");
            return;
        };
        let first = calls(&url).await.unwrap();
        let second = calls(&url).await.unwrap();
        assert!(second.commands >= first.commands);
    }

    #[test]
    fn scripts_are_the_round_trips_and_everything_the_commands() {
        let info = "# Commandstats\r\n\
            cmdstat_evalsha:calls=10,usec=50,usec_per_call=5.00,rejected_calls=0,failed_calls=0\r\n\
            cmdstat_script|load:calls=2,usec=9,usec_per_call=4.50,rejected_calls=0,failed_calls=0\r\n\
            cmdstat_hmget:calls=8,usec=8,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r\n\
            cmdstat_publish:calls=4,usec=8,usec_per_call=2.00,rejected_calls=0,failed_calls=0\r\n\
            cmdstat_info:calls=7,usec=8,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r\n";
        assert_eq!(
            parse(info),
            Calls {
                round_trips: 12,
                commands: 24
            }
        );
    }
}
