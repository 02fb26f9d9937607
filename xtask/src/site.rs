//! `cargo xtask site`: the site the server serves, from the frontend's
//! compiled WASM (see the crate's docs for the layout).
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use wasm_bindgen_cli_support::Bindgen;

/// The name of the bundle's files (`output-name` in the workspace's leptos
/// metadata; the server asks for these names).
const OUTPUT_NAME: &str = "embedded-chat";

pub struct Options {
    wasm: PathBuf,
    site_root: PathBuf,
    optimize: bool,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let root = crate::workspace_root();
        let mut wasm = None;
        let mut site_root = root.join("target/site");
        let mut optimize = true;
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().cloned().ok_or(format!("{name} needs a value"));
            match arg.as_str() {
                "--wasm" => wasm = Some(PathBuf::from(value("--wasm")?)),
                "--site-root" => site_root = PathBuf::from(value("--site-root")?),
                "--no-opt" => optimize = false,
                other => return Err(format!("unknown option `{other}`\n{}", crate::USAGE)),
            }
        }
        let wasm = wasm.ok_or(format!("--wasm is required\n{}", crate::USAGE))?;
        Ok(Options { wasm, site_root, optimize })
    }
}

pub fn build(options: &Options) -> Result<(), String> {
    let root = crate::workspace_root();
    let pkg = options.site_root.join("pkg");
    // A fresh site: files of an earlier build must not linger.
    if options.site_root.exists() {
        fs::remove_dir_all(&options.site_root)
            .map_err(|err| format!("cannot empty {}: {err}", options.site_root.display()))?;
    }
    fs::create_dir_all(&pkg).map_err(|err| format!("cannot create {}: {err}", pkg.display()))?;

    let wasm = bindgen(&options.wasm, &pkg)?;
    if options.optimize {
        crate::run_tool(
            Command::new("wasm-opt")
                // What the compiler emits for wasm32 today, beyond the MVP.
                .args(["-Oz", "--enable-bulk-memory", "--enable-nontrapping-float-to-int"])
                .arg(&wasm)
                .arg("-o")
                .arg(&wasm),
        )?;
    }
    copy(&root.join("style/main.css"), &pkg.join(format!("{OUTPUT_NAME}.css")))?;
    let wasm = name_by_content(&wasm)?;
    for extension in ["js", "css"] {
        name_by_content(&pkg.join(format!("{OUTPUT_NAME}.{extension}")))?;
    }
    precompress(&pkg)?;
    copy_dir(&root.join("public"), &options.site_root)?;
    println!(
        "site: {} ({} bytes of WASM; over the wire {} with brotli, {} with gzip)",
        options.site_root.display(),
        size(&wasm),
        size(&with_extension(&wasm, "br")),
        size(&with_extension(&wasm, "gz")),
    );
    Ok(())
}

/// Renames `pkg/x.wasm` to `pkg/x.<hash>.wasm`, the hash being the first
/// 16 hex digits of the content's SHA-256. A name that changes whenever the
/// content does lets browsers keep the file for good (the server sends it
/// `immutable`), and a page always asks for the bundle it was rendered
/// with, never an older one from a cache.
fn name_by_content(path: &Path) -> Result<PathBuf, String> {
    use sha2::{Digest, Sha256};
    let bytes = fs::read(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    let hash: String = Sha256::digest(&bytes)[..8].iter().map(|byte| format!("{byte:02x}")).collect();
    let stem = path.file_stem().and_then(|s| s.to_str()).ok_or("bundle file without a name")?;
    let extension = path.extension().and_then(|s| s.to_str()).ok_or("bundle file without an extension")?;
    let to = path.with_file_name(format!("{stem}.{hash}.{extension}"));
    fs::rename(path, &to).map_err(|err| format!("cannot rename {}: {err}", path.display()))?;
    Ok(to)
}

/// Each file of `pkg/` also brotli- and gzip-compressed beside it
/// (`x.wasm.br`, `x.wasm.gz`), at the best levels, once: the server sends
/// whichever the browser accepts as it is, instead of compressing the
/// bundle on every request (brotli's best level takes about a second for
/// the WASM).
fn precompress(pkg: &Path) -> Result<(), String> {
    use std::io::Write;
    let entries = fs::read_dir(pkg).map_err(|err| format!("cannot list {}: {err}", pkg.display()))?;
    for entry in entries {
        let path = entry.map_err(|err| format!("cannot list {}: {err}", pkg.display()))?.path();
        let bytes = fs::read(&path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
        let mut brotli = Vec::new();
        let params = brotli::enc::BrotliEncoderParams { quality: 11, lgwin: 22, ..Default::default() };
        brotli::BrotliCompress(&mut bytes.as_slice(), &mut brotli, &params)
            .map_err(|err| format!("brotli {}: {err}", path.display()))?;
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let gzip = gzip.write_all(&bytes).and_then(|()| gzip.finish());
        let gzip = gzip.map_err(|err| format!("gzip {}: {err}", path.display()))?;
        for (extension, compressed) in [("br", brotli), ("gz", gzip)] {
            let to = with_extension(&path, extension);
            fs::write(&to, compressed).map_err(|err| format!("cannot write {}: {err}", to.display()))?;
        }
    }
    Ok(())
}

/// `x.wasm` → `x.wasm.br`.
fn with_extension(path: &Path, extension: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(extension);
    name.into()
}

/// The JS glue and the WASM it loads, as `cargo leptos build` names them.
fn bindgen(input: &Path, pkg: &Path) -> Result<PathBuf, String> {
    if !input.is_file() {
        return Err(format!("no WASM at {} (build the frontend first)", input.display()));
    }
    Bindgen::new()
        .input_path(input)
        .out_name(OUTPUT_NAME)
        .typescript(false)
        .web(true)
        .and_then(|bindgen| bindgen.generate(pkg))
        .map_err(|err| format!("wasm-bindgen: {err:#}"))?;
    let wasm = pkg.join(format!("{OUTPUT_NAME}.wasm"));
    fs::rename(pkg.join(format!("{OUTPUT_NAME}_bg.wasm")), &wasm)
        .map_err(|err| format!("cannot rename the WASM: {err}"))?;
    Ok(wasm)
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    fs::copy(from, to)
        .map(drop)
        .map_err(|err| format!("cannot copy {} to {}: {err}", from.display(), to.display()))
}

/// Copies a folder's files into another, keeping their relative paths.
fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    let entries = fs::read_dir(from).map_err(|err| format!("cannot read {}: {err}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|err| format!("cannot read {}: {err}", from.display()))?;
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            fs::create_dir_all(&target)
                .map_err(|err| format!("cannot create {}: {err}", target.display()))?;
            copy_dir(&entry.path(), &target)?;
        } else {
            copy(&entry.path(), &target)?;
        }
    }
    Ok(())
}

fn size(path: &Path) -> u64 {
    fs::metadata(path).map_or(0, |m| m.len())
}
