//! Error types of the library. The binary wraps them with anyhow at its edge and prints
//! them as `regdrift: <cause chain>`.

use std::path::PathBuf;

/// An error about one file: which file, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {what}")]
    Invalid { path: PathBuf, what: String },
}

impl FileError {
    pub fn invalid(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        FileError::Invalid {
            path: path.into(),
            what: what.into(),
        }
    }
}

/// A problem in a text or byte format, before a file name is attached to it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{what}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct ParseError {
    /// 1-based line number, where the format has lines.
    pub line: Option<usize>,
    pub what: String,
}

impl ParseError {
    pub fn new(what: impl Into<String>) -> Self {
        ParseError {
            line: None,
            what: what.into(),
        }
    }
    pub fn at(line: usize, what: impl Into<String>) -> Self {
        ParseError {
            line: Some(line),
            what: what.into(),
        }
    }

    /// A TOML error in `text`, with the line its span starts on.
    pub fn from_toml(text: &str, e: &toml::de::Error) -> Self {
        ParseError {
            line: e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1),
            what: e.message().to_string(),
        }
    }
}
