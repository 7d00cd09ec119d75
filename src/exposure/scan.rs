//! Finding keygate secrets in files (`keygate keys scan`): anything shaped
//! `kgs_` and 49 alphanumerics between word boundaries, with whether its
//! checksum holds, and where it is. What a finding shows is masked; the
//! secret itself stays in a [`PlainSecret`] for `--revoke`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::keys::PlainSecret;
use crate::text::SECRET_PREFIX;

/// Characters after the prefix: 43 random, 6 of checksum.
const BODY_LEN: usize = 49;
/// Larger files are skipped: secrets live in source, configuration and
/// logs, not in multi-megabyte blobs.
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;
/// A NUL in the first bytes marks a binary file, which is skipped.
const BINARY_SNIFF_BYTES: usize = 8 * 1024;

/// One secret-shaped string in a file.
#[derive(Debug, Serialize)]
pub struct Finding {
    pub path: String,
    /// 1-based.
    pub line: usize,
    /// `kgs_AbCd…yz`: enough to tell findings apart, too little to use.
    pub masked: String,
    pub checksum_valid: bool,
    #[serde(skip)]
    pub secret: PlainSecret,
}

/// `kgs_` and the first 4 characters, an ellipsis, the last 2.
pub fn mask(secret: &str) -> String {
    let body = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    let head: String = body.chars().take(4).collect();
    let tail: String = body
        .chars()
        .rev()
        .take(2)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{SECRET_PREFIX}{head}…{tail}")
}

fn is_word(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// Every secret-shaped string in `line`, in order.
pub fn find_in_line(line: &str) -> Vec<&str> {
    let bytes = line.as_bytes();
    let prefix = SECRET_PREFIX.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i + prefix.len() + BODY_LEN <= bytes.len() {
        let starts = bytes[i..].starts_with(prefix) && (i == 0 || !is_word(bytes[i - 1]));
        if starts {
            let body_start = i + prefix.len();
            let end = body_start + BODY_LEN;
            let body_ok = bytes[body_start..end].iter().all(u8::is_ascii_alphanumeric);
            let bounded = bytes.get(end).is_none_or(|b| !is_word(*b));
            if body_ok && bounded {
                // ASCII throughout, so these are character boundaries.
                if let Some(text) = line.get(i..end) {
                    found.push(text);
                }
                i = end;
                continue;
            }
        }
        i += 1;
    }
    found
}

/// The findings in `text`, reported as being in `path`.
pub fn scan_text(path: &str, text: &str) -> Vec<Finding> {
    text.lines()
        .enumerate()
        .flat_map(|(n, line)| {
            find_in_line(line).into_iter().map(move |candidate| {
                let secret = PlainSecret::from_presented(candidate.to_owned());
                Finding {
                    path: path.to_owned(),
                    line: n + 1,
                    masked: mask(candidate),
                    checksum_valid: secret.is_well_formed(),
                    secret,
                }
            })
        })
        .collect()
}

/// Scans files and directories, recursively: `.git` folders, symbolic
/// links, binary files and files over [`MAX_FILE_BYTES`] are skipped. A
/// path given that cannot be read is an error; an unreadable file found
/// inside a directory is skipped with a warning on stderr.
pub fn scan_paths(paths: &[PathBuf]) -> io::Result<Vec<Finding>> {
    let mut findings = Vec::new();
    for path in paths {
        let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        let meta = fs::metadata(path).map_err(named)?;
        if meta.is_dir() {
            scan_dir(path, &mut findings).map_err(named)?;
        } else {
            scan_file(path, meta.len(), &mut findings).map_err(named)?;
        }
    }
    Ok(findings)
}

fn scan_dir(dir: &Path, findings: &mut Vec<Finding>) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            continue;
        }
        if kind.is_dir() {
            if entry.file_name() != ".git" {
                scan_dir(&path, findings)?;
            }
        } else if kind.is_file() {
            let size = entry.metadata()?.len();
            if let Err(e) = scan_file(&path, size, findings) {
                eprintln!("warning: skipped {}: {e}", path.display());
            }
        }
    }
    Ok(())
}

fn scan_file(path: &Path, size: u64, findings: &mut Vec<Finding>) -> io::Result<()> {
    if size > MAX_FILE_BYTES {
        return Ok(());
    }
    let bytes = fs::read(path)?;
    let sniff = &bytes[..bytes.len().min(BINARY_SNIFF_BYTES)];
    if sniff.contains(&0) {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&bytes);
    findings.extend(scan_text(&path.display().to_string(), &text));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_secrets_between_word_boundaries_only() {
        let secret = PlainSecret::generate();
        let s = secret.expose();
        let line = format!("a={s} \"{s}\" x{s} {s}9 {s}_ ({s})");
        let found = find_in_line(&line);
        assert_eq!(found, [s, s, s]);
        assert!(find_in_line("kgs_short and kgs_").is_empty());
    }

    #[test]
    fn masks_keep_the_prefix_four_and_two() {
        let secret = PlainSecret::generate();
        let s = secret.expose();
        let masked = mask(s);
        assert_eq!(masked, format!("{}…{}", &s[..8], &s[s.len() - 2..]));
        assert!(!masked.contains(&s[8..s.len() - 2]));
    }

    #[test]
    fn findings_carry_line_numbers_and_checksum_validity() {
        let secret = PlainSecret::generate();
        let fake = format!("kgs_{}", "A".repeat(49));
        let text = format!("one\ntwo {}\n{fake}\n", secret.expose());
        let found = scan_text("f.txt", &text);
        let summary: Vec<_> = found.iter().map(|f| (f.line, f.checksum_valid)).collect();
        assert_eq!(summary, [(2, true), (3, false)]);
    }
}
