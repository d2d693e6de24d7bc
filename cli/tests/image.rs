//! The installer image's recipe (`Dockerfile`, not buildable here: no Docker engine): every
//! file it copies from the build context exists, and the profiles it ships are the ones
//! `tent install` registers.

use std::path::Path;

#[test]
fn dockerfile_copies_existing_files() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(repo.join("Dockerfile")).expect("read Dockerfile");
    let mut copied = 0;
    for line in text.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("COPY ") else {
            continue;
        };
        if rest.starts_with("--from=") {
            continue;
        }
        let words: Vec<&str> = rest.split_whitespace().collect();
        let (dest, srcs) = words.split_last().expect("COPY has a destination");
        assert!(
            dest.starts_with('/') || *dest == "./" || !dest.is_empty(),
            "{line}"
        );
        for s in srcs {
            let p = repo.join(s);
            assert!(
                p.exists(),
                "Dockerfile copies {s}, which does not exist ({line})"
            );
            copied += 1;
        }
    }
    assert!(
        copied >= 8,
        "only {copied} sources found: the parser missed the COPY lines"
    );
    for f in ["config/tent.toml", "config/tent-compat.toml"] {
        assert!(text.contains(f), "the image does not ship {f}");
    }
}
