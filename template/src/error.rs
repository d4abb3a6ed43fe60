//! Parse and exec errors with their place in the template text, in Go's message form.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// A parse error at a byte offset of the source.
#[derive(Debug)]
pub(crate) struct PErr {
    pub(crate) msg: String,
    pub(crate) at: usize,
}

impl PErr {
    pub(crate) fn new(msg: impl Into<String>, at: usize) -> Self {
        PErr {
            msg: msg.into(),
            at,
        }
    }

    pub(crate) fn into_error(self, src: &str) -> TemplateError {
        let (line, _) = line_col(src, self.at);
        TemplateError::Parse(format!("template: :{line}: {}", self.msg))
    }
}

/// An exec error, located at the innermost node that has a span.
#[derive(Debug)]
pub(crate) struct Fail {
    pub(crate) msg: String,
    pub(crate) span: Option<Span>,
}

impl Fail {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        Fail {
            msg: msg.into(),
            span: None,
        }
    }

    pub(crate) fn at(mut self, span: Span) -> Self {
        if self.span.is_none() {
            self.span = Some(span);
        }
        self
    }

    pub(crate) fn into_error(self, src: &str) -> TemplateError {
        match self.span {
            Some(span) => {
                let (line, col) = line_col(src, span.start);
                let text = src.get(span.start..span.end).unwrap_or("").trim();
                TemplateError::Exec(format!(
                    "template: :{line}:{col}: executing at <{text}>: {}",
                    self.msg
                ))
            }
            None => TemplateError::Exec(format!("template: {}", self.msg)),
        }
    }
}

/// 1-based line and 0-based byte column of an offset, like Go's messages.
pub(crate) fn line_col(src: &str, at: usize) -> (usize, usize) {
    let at = at.min(src.len());
    let before = &src.as_bytes()[..at];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let col = match before.iter().rposition(|&b| b == b'\n') {
        Some(nl) => at - nl - 1,
        None => at,
    };
    (line, col)
}

// ---------------------------------------------------------------------------------------
