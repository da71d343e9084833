//! The policy file being parsed, for errors that point into it (`FILE:LINE:COLUMN`).

use std::ops::Range;

use super::{PolicyError, Position};

/// Where errors point: the file's name as given and its text.
pub(super) struct Source<'a> {
    pub(super) name: String,
    pub(super) text: &'a str,
}

impl Source<'_> {
    pub(super) fn at(&self, span: Range<usize>) -> Position {
        Position::of(&self.name, self.text, span)
    }

    pub(super) fn error(&self, span: Range<usize>, message: impl Into<String>) -> PolicyError {
        PolicyError::new(self.at(span), message)
    }
}
