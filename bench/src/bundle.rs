//! The release login bundle's size, as a browser downloads it.

use std::{io::Write, path::Path};

use anyhow::{bail, Context};
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct FileSize {
    pub file: String,
    pub raw: u64,
    pub gzip: u64,
    pub brotli: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Bundle {
    pub files: Vec<FileSize>,
    /// WASM + JS: what the design's 250 kB budget covers.
    pub wasm_js: FileSize,
    /// WASM + JS + CSS.
    pub total: FileSize,
}

fn measure(path: &Path) -> anyhow::Result<FileSize> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(&bytes)?;
    let gzip = gzip.finish()?.len() as u64;
    let mut brotli = Vec::new();
    // Quality 11, 4 MiB window: what a server precompressing assets uses.
    brotli::BrotliCompress(
        &mut bytes.as_slice(),
        &mut brotli,
        &brotli::enc::BrotliEncoderParams {
            quality: 11,
            lgwin: 22,
            ..Default::default()
        },
    )?;
    Ok(FileSize {
        file: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        raw: bytes.len() as u64,
        gzip,
        brotli: brotli.len() as u64,
    })
}

fn sum(name: &str, files: &[&FileSize]) -> FileSize {
    FileSize {
        file: name.into(),
        raw: files.iter().map(|f| f.raw).sum(),
        gzip: files.iter().map(|f| f.gzip).sum(),
        brotli: files.iter().map(|f| f.brotli).sum(),
    }
}

/// The files `/login` loads from the site cargo-leptos built.
pub fn measure_site(site_root: &Path) -> anyhow::Result<Bundle> {
    let pkg = site_root.join("pkg");
    let wasm = measure(&pkg.join("qrlogin.wasm"))?;
    let js = measure(&pkg.join("qrlogin.js"))?;
    let css = measure(&pkg.join("qrlogin.css"))?;
    Ok(Bundle {
        wasm_js: sum("WASM + JS", &[&wasm, &js]),
        total: sum("WASM + JS + CSS", &[&wasm, &js, &css]),
        files: vec![wasm, js, css],
    })
}

pub fn kb(bytes: u64) -> f64 {
    bytes as f64 / 1000.0
}

pub fn check_budget(site_root: &Path, max_brotli_kb: f64) -> anyhow::Result<()> {
    let bundle = measure_site(site_root)?;
    for f in bundle.files.iter().chain([&bundle.wasm_js, &bundle.total]) {
        println!(
            "{:<16} {:>8.1} kB raw {:>8.1} kB gzip {:>8.1} kB brotli",
            f.file,
            kb(f.raw),
            kb(f.gzip),
            kb(f.brotli)
        );
    }
    let got = kb(bundle.wasm_js.brotli);
    if got > max_brotli_kb {
        bail!("the login bundle's WASM + JS is {got:.1} kB brotli, over the {max_brotli_kb} kB budget");
    }
    println!("bundle budget: {got:.1} kB of {max_brotli_kb} kB brotli (WASM + JS)");
    Ok(())
}
