//! Positioned SDL errors.

use std::fmt;

use crate::yaml::Pos;

/// One problem in an SDL file: where it is and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}:{line}:{column}: {path}: {message}")]
pub struct SdlError {
    /// The name the file was given to [`crate::Sdl::parse`] (usually its path).
    pub source_name: String,
    /// Line of the offending node, starting at 1.
    pub line: u32,
    /// Column of the offending node, starting at 1.
    pub column: u32,
    /// Dotted path of the field, e.g. `profiles.compute.web.resources.cpu.units`
    /// (`<root>` for the document itself).
    pub path: String,
    /// What is wrong and what is expected, lowercase, no trailing period.
    pub message: String,
}

/// Every problem found in one SDL file, in source order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SdlErrors {
    /// The problems; never empty.
    pub errors: Vec<SdlError>,
}

impl fmt::Display for SdlErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A dotted field path under construction.
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldPath(String);

impl FieldPath {
    pub(crate) fn root() -> Self {
        FieldPath(String::new())
    }

    /// The path of a mapping key below this one.
    pub(crate) fn key(&self, key: &str) -> Self {
        if self.0.is_empty() {
            FieldPath(key.to_owned())
        } else {
            FieldPath(format!("{}.{key}", self.0))
        }
    }

    /// The path of a list element below this one.
    pub(crate) fn index(&self, i: usize) -> Self {
        FieldPath(format!("{}[{i}]", self.0))
    }

    pub(crate) fn as_str(&self) -> &str {
        if self.0.is_empty() { "<root>" } else { &self.0 }
    }
}

/// Collects errors while a file is decoded and checked.
#[derive(Debug)]
pub(crate) struct Diagnostics {
    source_name: String,
    errors: Vec<SdlError>,
    warnings: Vec<SdlError>,
}

/// Stop collecting after this many problems in one file.
const MAX_ERRORS: usize = 100;

impl Diagnostics {
    pub(crate) fn new(source_name: &str) -> Self {
        Diagnostics {
            source_name: source_name.to_owned(),
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Records something Akash accepts but that is probably a mistake.
    pub(crate) fn warning(&mut self, pos: Pos, path: &FieldPath, message: impl Into<String>) {
        if self.warnings.len() >= MAX_ERRORS {
            return;
        }
        self.warnings.push(SdlError {
            source_name: self.source_name.clone(),
            line: pos.line,
            column: pos.column,
            path: path.as_str().to_owned(),
            message: message.into(),
        });
    }

    /// The warnings recorded so far, in source order.
    pub(crate) fn take_warnings(&mut self) -> Vec<SdlError> {
        let mut w = std::mem::take(&mut self.warnings);
        w.sort_by_key(|e| (e.line, e.column));
        w.dedup();
        w
    }

    pub(crate) fn error(&mut self, pos: Pos, path: &FieldPath, message: impl Into<String>) {
        if self.errors.len() >= MAX_ERRORS {
            return;
        }
        self.errors.push(SdlError {
            source_name: self.source_name.clone(),
            line: pos.line,
            column: pos.column,
            path: path.as_str().to_owned(),
            message: message.into(),
        });
    }

    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    pub(crate) fn into_result<T>(self, value: T) -> Result<T, SdlErrors> {
        if self.errors.is_empty() { Ok(value) } else { Err(self.into_errors()) }
    }

    /// The collected errors, sorted by position (a generic one if none was recorded).
    pub(crate) fn into_errors(mut self) -> SdlErrors {
        if self.errors.is_empty() {
            self.error(Pos { line: 1, column: 1 }, &FieldPath::root(), "invalid sdl");
        }
        self.errors.sort_by_key(|e| (e.line, e.column));
        self.errors.dedup();
        SdlErrors { errors: self.errors }
    }
}
