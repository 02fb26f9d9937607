//! The names the browser fetches the bundle by: the JS glue, the WASM and
//! the stylesheet.
//!
//! The release build (`cargo xtask site`) puts a content hash in each name
//! (`embedded-chat.3f9c0a…e1.wasm`), so browsers may keep the files for
//! good and a page never meets a bundle other than its own; `cargo leptos
//! watch` makes them without. The server looks at the files of `pkg/` once
//! when it starts ([`Bundle::from_files`]) and gives the pages the result
//! as context.

/// Where a page finds its bundle (paths from the site's root).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    pub js: String,
    pub wasm: String,
    pub css: String,
}

/// Hex digits of the content hash in a bundle file's name.
const HASH_DIGITS: usize = 16;

impl Bundle {
    /// The names without a hash: `/{pkg_dir}/{output_name}.wasm`, ….
    pub fn plain(pkg_dir: &str, output_name: &str) -> Self {
        let path = |extension: &str| format!("/{pkg_dir}/{output_name}.{extension}");
        Bundle { js: path("js"), wasm: path("wasm"), css: path("css") }
    }

    /// The bundle among the file names of `pkg/`: for each kind, the one
    /// file named `{output_name}.{hash}.{extension}`; the plain name when
    /// there is none (or, never made by the build, more than one).
    pub fn from_files<'a>(
        pkg_dir: &str,
        output_name: &str,
        files: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let files: Vec<&str> = files.into_iter().collect();
        let find = |extension: &str| {
            let mut hashed = files.iter().filter(|name| {
                name.strip_prefix(output_name)
                    .and_then(|rest| rest.strip_prefix('.'))
                    .and_then(|rest| rest.strip_suffix(extension))
                    .and_then(|rest| rest.strip_suffix('.'))
                    .is_some_and(is_hash)
            });
            match (hashed.next(), hashed.next()) {
                (Some(name), None) => format!("/{pkg_dir}/{name}"),
                _ => format!("/{pkg_dir}/{output_name}.{extension}"),
            }
        };
        Bundle { js: find("js"), wasm: find("wasm"), css: find("css") }
    }

    /// Whether a file name of `pkg/` carries a content hash, so that what
    /// it names can never change: `x.{hash}.wasm` (the compressed copies
    /// beside it are never asked for by name).
    pub fn is_hashed(file_name: &str) -> bool {
        let mut parts = file_name.rsplit('.');
        let (_extension, hash, stem) = (parts.next(), parts.next(), parts.next());
        stem.is_some_and(|stem| !stem.is_empty()) && hash.is_some_and(is_hash)
    }
}

fn is_hash(text: &str) -> bool {
    text.len() == HASH_DIGITS && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::Bundle;

    const HASH: &str = "0123456789abcdef";

    #[test]
    fn without_hashed_files_the_names_are_plain() {
        let plain = Bundle::plain("pkg", "embedded-chat");
        assert_eq!(plain.wasm, "/pkg/embedded-chat.wasm");
        assert_eq!(plain.js, "/pkg/embedded-chat.js");
        assert_eq!(plain.css, "/pkg/embedded-chat.css");
        let files = ["embedded-chat.js", "embedded-chat.wasm", "embedded-chat.css", "embedded-chat.wasm.br"];
        assert_eq!(Bundle::from_files("pkg", "embedded-chat", files), plain);
    }

    #[test]
    fn hashed_files_are_found_by_kind() {
        let wasm = format!("embedded-chat.{HASH}.wasm");
        let js = "embedded-chat.fedcba9876543210.js";
        let files = [wasm.as_str(), &format!("{wasm}.br"), &format!("{wasm}.gz"), js, "other.css"];
        let bundle = Bundle::from_files("pkg", "embedded-chat", files);
        assert_eq!(bundle.wasm, format!("/pkg/{wasm}"));
        assert_eq!(bundle.js, format!("/pkg/{js}"));
        // No hashed stylesheet among them (`other.css` is another name).
        assert_eq!(bundle.css, "/pkg/embedded-chat.css");
    }

    #[test]
    fn two_hashed_files_of_a_kind_are_not_guessed_between() {
        let (a, b) = (format!("embedded-chat.{HASH}.wasm"), "embedded-chat.fedcba9876543210.wasm");
        let bundle = Bundle::from_files("pkg", "embedded-chat", [a.as_str(), b]);
        assert_eq!(bundle.wasm, "/pkg/embedded-chat.wasm");
    }

    #[test]
    fn a_hash_is_sixteen_lowercase_hex_digits_before_the_extension() {
        assert!(Bundle::is_hashed(&format!("embedded-chat.{HASH}.wasm")));
        assert!(Bundle::is_hashed(&format!("x.{HASH}.css")));
        for not in [
            "embedded-chat.wasm",
            "embedded-chat.wasm.br",
            &format!("{HASH}.wasm"),
            &format!(".{HASH}.wasm"),
            "embedded-chat.0123456789ABCDEF.wasm",
            "embedded-chat.0123456789abcde.wasm",
            "embedded-chat.0123456789abcdefa.wasm",
            "embedded-chat.0123456789abcdeg.wasm",
            "",
        ] {
            assert!(!Bundle::is_hashed(not), "{not:?}");
        }
    }
}
