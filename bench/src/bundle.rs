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
    /// WASM + JS: what the design's budget (`qrlogin-bench budget`) covers.
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

/// The files in `pkg` whose names `wanted` picks.
fn files_named(
    pkg: &Path,
    wanted: impl Fn(&str) -> bool,
) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(pkg).with_context(|| format!("listing {}", pkg.display()))? {
        let path = entry?.path();
        if path
            .file_name()
            .is_some_and(|name| wanted(&name.to_string_lossy()))
        {
            found.push(path);
        }
    }
    Ok(found)
}

/// The split loader (`cargo leptos build --split`): `qrlogin.js` imports
/// it, so every page loads it. None without `--split`.
fn split_loader(pkg: &Path) -> anyhow::Result<Option<std::path::PathBuf>> {
    Ok(
        files_named(pkg, |n| n.starts_with("__wasm_split") && n.ends_with(".js"))?
            .into_iter()
            .next(),
    )
}

/// The files `/login` (and `/authorize`, `/`) load from the site
/// cargo-leptos built: the main module and its JS, not the islands split
/// off for the phone's pages, which load theirs when they hydrate.
pub fn measure_site(site_root: &Path) -> anyhow::Result<Bundle> {
    let pkg = site_root.join("pkg");
    let wasm = measure(&pkg.join("qrlogin.wasm"))?;
    let js = measure(&pkg.join("qrlogin.js"))?;
    let css = measure(&pkg.join("qrlogin.css"))?;
    let mut code = vec![wasm, js];
    if let Some(loader) = split_loader(&pkg)? {
        code.push(measure(&loader)?);
    }
    let code_refs: Vec<&FileSize> = code.iter().collect();
    let wasm_js = sum("WASM + JS", &code_refs);
    let total = sum("WASM + JS + CSS", &[&wasm_js, &css]);
    code.push(css);
    Ok(Bundle {
        wasm_js,
        total,
        files: code,
    })
}

/// The login card gets its words from the page (island props); a word of
/// a catalogue in the main module means an island that `/login` loads
/// reaches `t()` and so carries both languages' catalogues, or that
/// wasm-split left all read-only data in the main module (see
/// `SPLIT_SLACK` in the frontend crate).
fn catalogue_in_main(site_root: &Path) -> anyhow::Result<Option<&'static str>> {
    use app::i18n::Lang;
    let path = site_root.join("pkg/qrlogin.wasm");
    let wasm = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let words = Lang::ALL.iter().map(|lang| lang.text().not_found_lead);
    Ok(words
        .into_iter()
        .find(|word| wasm.windows(word.len()).any(|w| w == word.as_bytes())))
}

/// The islands split off the main module (`split_*.wasm`, `chunk_*.wasm`):
/// what the phone's pages load, each piece when an island needs it.
fn split_off(site_root: &Path) -> anyhow::Result<FileSize> {
    let pieces = files_named(&site_root.join("pkg"), |n| {
        (n.starts_with("split_") || n.starts_with("chunk_")) && n.ends_with(".wasm")
    })?
    .iter()
    .map(|path| measure(path))
    .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(sum("split off", &pieces.iter().collect::<Vec<_>>()))
}

fn print_row(f: &FileSize, remark: &str) {
    println!(
        "{:<16} {:>8.1} kB raw {:>8.1} kB gzip {:>8.1} kB brotli{remark}",
        f.file,
        kb(f.raw),
        kb(f.gzip),
        kb(f.brotli)
    );
}

pub fn kb(bytes: u64) -> f64 {
    bytes as f64 / 1000.0
}

pub fn check_budget(site_root: &Path, max_brotli_kb: f64) -> anyhow::Result<()> {
    let bundle = measure_site(site_root)?;
    for f in bundle.files.iter().chain([&bundle.wasm_js, &bundle.total]) {
        print_row(f, "");
    }
    print_row(
        &split_off(site_root)?,
        " (the phone's islands, loaded when used; not on /login)",
    );
    if let Some(word) = catalogue_in_main(site_root)? {
        bail!(
            "the login bundle carries a language catalogue (it holds {word:?}): an island /login loads calls i18n::t(), \
             or wasm-split kept all of .rodata in the main module (frontend's SPLIT_SLACK too small?)"
        );
    }
    let got = kb(bundle.wasm_js.brotli);
    if got > max_brotli_kb {
        bail!("the login bundle's WASM + JS is {got:.1} kB brotli, over the {max_brotli_kb} kB budget");
    }
    println!("bundle budget: {got:.1} kB of {max_brotli_kb} kB brotli (WASM + JS)");
    Ok(())
}
