//! The shell commands of the project's Markdown documents, as a reader would paste them:
//! every line of every `sh` code block, with `\` continuations joined, comments and a
//! trailing `&` dropped, split into words with shell quoting. The README's examples are
//! run (`cluster/tests/readme.rs`) and every `flowsight` command of the docs is parsed by
//! the CLI (`cluster/src/main.rs`), so that a renamed flag or field breaks the build, not
//! the reader.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// One command: where it is written and its words (a pipe's later stages in `piped`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocCommand {
    pub file: PathBuf,
    pub line: usize,
    pub words: Vec<String>,
    /// The commands after `|`, each as its words.
    pub piped: Vec<Vec<String>>,
}

impl DocCommand {
    /// `file:line`, for messages.
    pub fn place(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }

    /// The words after any leading `NAME=value` environment assignments.
    pub fn program_and_args(&self) -> &[String] {
        let skip = self
            .words
            .iter()
            .take_while(|w| {
                w.split_once('=').is_some_and(|(name, _)| {
                    !name.is_empty()
                        && name
                            .chars()
                            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                })
            })
            .count();
        &self.words[skip..]
    }
}

/// The workspace's root (this file lives in `cluster/tests/common`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the cluster crate sits in the workspace")
        .to_path_buf()
}

/// README.md and every Markdown file under docs/.
pub fn documents() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .map(|dir| {
            dir.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "md"))
                .collect()
        })
        .unwrap_or_default();
    docs.sort();
    files.extend(docs);
    files
}

/// The commands of one document, in order.
pub fn commands(file: &Path) -> Vec<DocCommand> {
    let text = std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    let mut found = Vec::new();
    let mut in_shell = false;
    let mut pending: Option<(usize, String)> = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(fence) = trimmed.strip_prefix("```") {
            in_shell = !in_shell && matches!(fence.trim(), "sh" | "bash" | "shell" | "console");
            pending = None;
            continue;
        }
        if !in_shell {
            continue;
        }
        let (start, mut joined) = pending.take().unwrap_or((index + 1, String::new()));
        let body = trimmed.strip_prefix("$ ").unwrap_or(trimmed);
        if let Some(continued) = body.trim_end().strip_suffix('\\') {
            joined.push_str(continued);
            joined.push(' ');
            pending = Some((start, joined));
            continue;
        }
        joined.push_str(body);
        let mut stages = split_words(&joined).into_iter();
        let Some(words) = stages.next().filter(|w| !w.is_empty()) else {
            continue;
        };
        found.push(DocCommand {
            file: file.to_path_buf(),
            line: start,
            words,
            piped: stages.collect(),
        });
    }
    found
}

/// Splits a shell line into the words of each pipeline stage: single and double quotes,
/// backslash escapes outside single quotes, a `#` comment at the start of a word, a
/// trailing `&`. Enough for documentation, not a shell.
pub fn split_words(line: &str) -> Vec<Vec<String>> {
    let mut stages = vec![Vec::new()];
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                if let Some(next) = chars.next() {
                    word.push(next);
                    in_word = true;
                }
            }
            (None, '#') if !in_word => break,
            (None, c) if c.is_whitespace() || c == '|' => {
                if in_word {
                    stages
                        .last_mut()
                        .expect("a stage")
                        .push(std::mem::take(&mut word));
                    in_word = false;
                }
                if c == '|' {
                    stages.push(Vec::new());
                }
            }
            (None, '&') if chars.peek().is_none_or(|c| c.is_whitespace()) => {}
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        stages.last_mut().expect("a stage").push(word);
    }
    stages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_quotes_pipes_and_comments() {
        assert_eq!(
            split_words(r#"curl -s 'a b' "c \"d\"" | jq '.rows[:3]'   # note"#),
            vec![
                vec!["curl", "-s", "a b", "c \"d\""],
                vec!["jq", ".rows[:3]"]
            ]
        );
        assert_eq!(
            split_words("flowsight run --workers 2 &"),
            vec![vec!["flowsight", "run", "--workers", "2"]]
        );
        assert_eq!(split_words("# only a comment"), vec![Vec::<String>::new()]);
    }
}
