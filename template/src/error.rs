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
    /// Go's text for the node when it is not the source text (`{{template "x"}}`).
    pub(crate) text: Option<Box<str>>,
    /// The `define`d template the error happened in (None: the main template).
    pub(crate) template: Option<Box<str>>,
    /// Where to report the error when not at the span's start.
    pub(crate) pos: Option<usize>,
}

impl Fail {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        Fail {
            msg: msg.into(),
            span: None,
            text: None,
            template: None,
            pos: None,
        }
    }

    pub(crate) fn at_pos(mut self, span: Span, pos: usize) -> Self {
        if self.span.is_none() {
            self.span = Some(span);
            self.pos = Some(pos);
        }
        self
    }

    pub(crate) fn at_text(mut self, span: Span, text: &str) -> Self {
        if self.span.is_none() {
            self.span = Some(span);
            self.text = Some(text.into());
        }
        self
    }

    /// Name the template the error happened in, unless an inner one is named already.
    pub(crate) fn in_template(mut self, name: &str) -> Self {
        if self.template.is_none() {
            self.template = Some(name.into());
        }
        self
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
                let (line, col) = line_col(src, self.pos.unwrap_or(span.start));
                let text = match &self.text {
                    Some(text) => text,
                    None => src.get(span.start..span.end).unwrap_or("").trim(),
                };
                let name = self.template.as_deref().unwrap_or("");
                TemplateError::Exec(format!(
                    "template: :{line}:{col}: executing {name:?} at <{text}>: {}",
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
