//! Embeds `examples/sample-service` in `wua`, so `wua --embedded` serves
//! the sample from an installed binary, with no source tree around.

use std::path::{Path, PathBuf};

fn main() {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let sample = Path::new(&manifest).join("../../examples/sample-service");
    // A directory: cargo rebuilds when anything under it changes.
    println!("cargo::rerun-if-changed={}", sample.display());
    let mut files = Vec::new();
    collect(&sample, &sample, &mut files);
    files.sort();
    let mut code =
        String::from("/// The sample service's files: path under the service directory, bytes.\n");
    code.push_str("pub const SAMPLE_FILES: &[(&str, &[u8])] = &[\n");
    for (relative, absolute) in files {
        code.push_str(&format!(
            "    ({relative:?}, include_bytes!({absolute:?})),\n"
        ));
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("sample_service.rs"), code).expect("writing sample_service.rs");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|error| panic!("reading {}: {error}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect(root, &path, files);
            continue;
        }
        let relative = path
            .strip_prefix(root)
            .expect("under the sample")
            .to_str()
            .expect("sample file names are UTF-8")
            .to_owned();
        let absolute = path
            .canonicalize()
            .expect("a sample file")
            .to_str()
            .expect("the source tree's path is UTF-8")
            .to_owned();
        files.push((relative, absolute));
    }
}
