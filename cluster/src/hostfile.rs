//! Host files: one `host:port` per line, in process order; `#` starts a comment.

use std::path::Path;

/// An unusable host file.
#[derive(Debug, thiserror::Error)]
pub enum HostFileError {
    #[error("cannot read host file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("host file {path}, line {line}: {entry:?} is not host:port")]
    BadEntry {
        path: String,
        line: usize,
        entry: String,
    },
    #[error("host file {path} lists no processes")]
    Empty { path: String },
}

/// Reads the addresses of a cluster's processes.
pub fn read(path: &Path) -> Result<Vec<String>, HostFileError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| HostFileError::Read {
        path: shown.clone(),
        source,
    })?;
    parse(&text, &shown)
}

pub fn parse(text: &str, shown: &str) -> Result<Vec<String>, HostFileError> {
    let mut addresses = Vec::new();
    for (number, raw) in text.lines().enumerate() {
        let entry = raw.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        let valid = entry
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !valid {
            return Err(HostFileError::BadEntry {
                path: shown.to_string(),
                line: number + 1,
                entry: entry.to_string(),
            });
        }
        addresses.push(entry.to_string());
    }
    if addresses.is_empty() {
        return Err(HostFileError::Empty {
            path: shown.to_string(),
        });
    }
    Ok(addresses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comments_and_rejects_garbage() {
        let hosts = parse(
            "# cluster\nlocalhost:2101\n\n127.0.0.1:2102 # second\n",
            "h",
        )
        .unwrap();
        assert_eq!(hosts, vec!["localhost:2101", "127.0.0.1:2102"]);
        assert!(parse("localhost\n", "h").is_err());
        assert!(parse("localhost:99999\n", "h").is_err());
        assert!(parse("# nothing\n", "h").is_err());
    }
}
