//! The tree parser: actions into nodes, control structures (`if`, `with`, `range`,
//! `break`, `continue`), definitions (`define`, `block`) and `template` calls, with Go's
//! variable scopes checked as the tree is built.

use super::*;

#[derive(Debug, Clone)]
pub(crate) enum Node {
    Text(Box<str>),
    /// An action; it prints its value unless its pipeline declares or assigns variables.
    Action(Pipeline),
    /// `if` (or `with`, which rebinds dot to the chosen branch's value).
    If(Box<IfNode>),
    Range(Box<RangeNode>),
    Break,
    Continue,
    Template(Box<TemplateCall>),
}

#[derive(Debug, Clone)]
pub(crate) struct IfNode {
    pub(crate) with: bool,
    pub(crate) branches: Vec<(Pipeline, Vec<Node>)>,
    pub(crate) otherwise: Vec<Node>,
}

#[derive(Debug, Clone)]
pub(crate) struct RangeNode {
    pub(crate) pipe: Pipeline,
    pub(crate) body: Vec<Node>,
    pub(crate) otherwise: Vec<Node>,
}

#[derive(Debug, Clone)]
pub(crate) struct TemplateCall {
    pub(crate) name: Box<str>,
    pub(crate) pipe: Option<Pipeline>,
    /// Where the name is (Go reports errors there), and Go's text for the node.
    pub(crate) span: Span,
    pub(crate) text: Box<str>,
}

/// A named template from `define` or `block`.
#[derive(Debug, Clone)]
pub(crate) struct Define {
    pub(crate) name: Box<str>,
    pub(crate) nodes: Vec<Node>,
    /// 1 + how deeply control structures nest in the body (for the exec depth limit).
    pub(crate) depth: usize,
}

/// Parse state shared by the actions: variables in scope and what dot is.
pub(crate) struct Ctx {
    /// Variable names by id; id 0 is `$`.
    pub(crate) names: Vec<Box<str>>,
    /// Ids of the variables in scope, innermost last (Go's declaration order).
    pub(crate) scope: Vec<u32>,
    /// Dot is the record here (top level, outside `with`/`range`), so field chains on
    /// it are resolved when parsing.
    pub(crate) dot_static: bool,
    /// `$` is the record here (the main template, and `$` is never declared or assigned).
    pub(crate) root_static: bool,
    pub(crate) range_depth: usize,
    /// The template declares, assigns or reads variables other than a static `$`.
    pub(crate) uses_vars: bool,
}

impl Ctx {
    pub(crate) fn new(root_static: bool) -> Self {
        Ctx {
            names: vec!["".into()],
            scope: Vec::new(),
            dot_static: true,
            root_static,
            range_depth: 0,
            uses_vars: false,
        }
    }

    pub(crate) fn id(&mut self, name: &str) -> u32 {
        match self.names.iter().position(|n| &**n == name) {
            Some(i) => i as u32,
            None => {
                self.names.push(name.into());
                (self.names.len() - 1) as u32
            }
        }
    }

    /// A variable in scope by name, as Go's parser checks it.
    pub(crate) fn lookup(&mut self, name: &str) -> Option<Var> {
        if name.is_empty() {
            return Some(Var {
                id: 0,
                name: "".into(),
                span: Span { start: 0, end: 0 },
            });
        }
        let id = self.names.iter().position(|n| &**n == name)? as u32;
        self.scope.contains(&id).then(|| Var {
            id,
            name: name.into(),
            span: Span { start: 0, end: 0 },
        })
    }
}

pub(crate) enum Act {
    Pipeline(Pipeline),
    If(Pipeline),
    With(Pipeline),
    Range(Pipeline),
    ElseIf(Pipeline),
    ElseWith(Pipeline),
    Else,
    End,
    Break,
    Continue,
    Define(Box<str>),
    Block(Box<str>, Pipeline, Span),
    Template(TemplateCall),
}

pub(crate) enum Stop {
    Eof,
    Else(usize),
    ElseIf(Pipeline, usize),
    ElseWith(Pipeline, usize),
    End(usize),
}

impl Stop {
    fn describe(&self) -> &'static str {
        match self {
            Stop::Eof => "EOF",
            Stop::End(_) => "{{end}}",
            _ => "{{else}}",
        }
    }
}

pub(crate) struct TreeParser<'s> {
    pub(crate) src: &'s str,
    pub(crate) items: std::vec::IntoIter<Item>,
    pub(crate) depth: usize,
    /// The deepest nesting seen since the current definition started.
    pub(crate) max_depth: usize,
    pub(crate) ctx: Ctx,
    pub(crate) defines: Vec<Define>,
}

/// True if some action declares or assigns `$` (then `$` is a variable like any other).
pub(crate) fn root_is_assigned(items: &[Item]) -> bool {
    items.iter().any(|item| match item {
        Item::Action { toks, .. } => {
            toks.iter()
                .any(|t| matches!(&t.tok, Tok::Var(v) if v.is_empty()))
                && toks
                    .iter()
                    .any(|t| matches!(t.tok, Tok::Assign | Tok::Declare))
        }
        Item::Text(_) => false,
    })
}

/// Go's `IsEmptyTree`: only white space text.
pub(crate) fn is_empty_tree(nodes: &[Node]) -> bool {
    nodes
        .iter()
        .all(|n| matches!(n, Node::Text(t) if t.trim_matches(SPACE).is_empty()))
}

impl TreeParser<'_> {
    pub(crate) fn top(&mut self) -> Result<Vec<Node>, PErr> {
        let (nodes, stop) = self.list(true)?;
        match stop {
            Stop::Eof => Ok(nodes),
            Stop::End(at) => Err(PErr::new("unexpected {{end}}", at)),
            Stop::Else(at) | Stop::ElseIf(_, at) | Stop::ElseWith(_, at) => {
                Err(PErr::new("unexpected {{else}}", at))
            }
        }
    }

    pub(crate) fn list(&mut self, top: bool) -> Result<(Vec<Node>, Stop), PErr> {
        let mut nodes = Vec::new();
        while let Some(item) = self.items.next() {
            let (toks, at) = match item {
                Item::Text(t) => {
                    nodes.push(Node::Text(t));
                    continue;
                }
                Item::Action { toks, at } => (toks, at),
            };
            let mark = self.ctx.scope.len();
            match classify(&toks, at, self.src, &mut self.ctx, top)? {
                Act::Pipeline(p) => nodes.push(Node::Action(p)),
                Act::If(p) => nodes.push(self.if_node(p, at, false)?),
                Act::With(p) => nodes.push(self.if_node(p, at, true)?),
                Act::Range(p) => nodes.push(self.range_node(p, at)?),
                Act::Break => nodes.push(Node::Break),
                Act::Continue => nodes.push(Node::Continue),
                Act::Template(call) => nodes.push(Node::Template(Box::new(call))),
                Act::Define(name) => self.define(name, at, "define")?,
                Act::Block(name, pipe, span) => {
                    self.define(name.clone(), at, "block")?;
                    let text = format!("{{{{template {name:?} {}}}}}", pipe_text(self.src, &pipe));
                    nodes.push(Node::Template(Box::new(TemplateCall {
                        name,
                        pipe: Some(pipe),
                        span,
                        text: text.into(),
                    })));
                }
                Act::Else => return Ok((nodes, Stop::Else(at))),
                Act::ElseIf(p) => return Ok((nodes, Stop::ElseIf(p, at))),
                Act::ElseWith(p) => return Ok((nodes, Stop::ElseWith(p, at))),
                Act::End => return Ok((nodes, Stop::End(at))),
            }
            // A control structure's variables go out of scope at its end.
            if matches!(nodes.last(), Some(Node::If(_) | Node::Range(_))) {
                self.ctx.scope.truncate(mark);
            }
        }
        Ok((nodes, Stop::Eof))
    }

    fn enter(&mut self, what: &str, at: usize) -> Result<(), PErr> {
        if self.depth >= MAX_DEPTH {
            return Err(PErr::new(format!("{{{{{what}}}}} nested too deeply"), at));
        }
        self.depth += 1;
        self.max_depth = self.max_depth.max(self.depth);
        Ok(())
    }

    /// The list of a branch whose dot is the branch's value when `rebind`.
    fn branch(&mut self, rebind: bool) -> Result<(Vec<Node>, Stop), PErr> {
        let saved = self.ctx.dot_static;
        if rebind {
            self.ctx.dot_static = false;
        }
        let result = self.list(false);
        self.ctx.dot_static = saved;
        result
    }

    pub(crate) fn if_node(&mut self, cond: Pipeline, at: usize, with: bool) -> Result<Node, PErr> {
        self.enter(if with { "with" } else { "if" }, at)?;
        let mut branches = Vec::new();
        let mut cond = cond;
        let otherwise = loop {
            let (body, stop) = self.branch(with)?;
            branches.push((cond, body));
            match stop {
                Stop::End(_) => break Vec::new(),
                Stop::ElseIf(p, _) if !with => cond = p,
                Stop::ElseWith(p, _) if with => cond = p,
                Stop::ElseIf(_, at) => return Err(PErr::new("unexpected <if> in input", at)),
                Stop::ElseWith(_, at) => return Err(PErr::new("unexpected <with> in input", at)),
                Stop::Else(_) => break self.else_list()?,
                Stop::Eof => return Err(PErr::new("unexpected EOF", self.src.len())),
            }
        };
        self.depth -= 1;
        Ok(Node::If(Box::new(IfNode {
            with,
            branches,
            otherwise,
        })))
    }

    /// The list after `{{else}}`, up to `{{end}}`.
    fn else_list(&mut self) -> Result<Vec<Node>, PErr> {
        let (body, stop) = self.list(false)?;
        match stop {
            Stop::End(_) => Ok(body),
            Stop::Else(p) | Stop::ElseIf(_, p) | Stop::ElseWith(_, p) => {
                Err(PErr::new("expected end; found {{else}}", p))
            }
            Stop::Eof => Err(PErr::new("unexpected EOF", self.src.len())),
        }
    }

    pub(crate) fn range_node(&mut self, pipe: Pipeline, at: usize) -> Result<Node, PErr> {
        self.enter("range", at)?;
        self.ctx.range_depth += 1;
        let (body, stop) = self.branch(true)?;
        self.ctx.range_depth -= 1;
        let otherwise = match stop {
            Stop::End(_) => Vec::new(),
            Stop::Else(_) => self.else_list()?,
            Stop::ElseIf(_, at) => return Err(PErr::new("unexpected <if> in input", at)),
            Stop::ElseWith(_, at) => return Err(PErr::new("unexpected <with> in input", at)),
            Stop::Eof => return Err(PErr::new("unexpected EOF", self.src.len())),
        };
        self.depth -= 1;
        Ok(Node::Range(Box::new(RangeNode {
            pipe,
            body,
            otherwise,
        })))
    }

    /// The body of `define` or `block`: a template of its own, with fresh variables.
    fn define(&mut self, name: Box<str>, at: usize, context: &str) -> Result<(), PErr> {
        self.enter(context, at)?;
        let scope = std::mem::take(&mut self.ctx.scope);
        let saved = (
            self.ctx.dot_static,
            self.ctx.root_static,
            self.ctx.range_depth,
        );
        self.ctx.dot_static = false;
        self.ctx.root_static = false;
        self.ctx.range_depth = 0;
        let outer_max = std::mem::replace(&mut self.max_depth, self.depth);
        let (nodes, stop) = self.list(false)?;
        let depth = 1 + self.max_depth - self.depth;
        self.max_depth = outer_max.max(self.max_depth);
        (
            self.ctx.dot_static,
            self.ctx.root_static,
            self.ctx.range_depth,
        ) = saved;
        self.ctx.scope = scope;
        self.depth -= 1;
        match stop {
            Stop::End(_) => {}
            Stop::Eof => return Err(PErr::new("unexpected EOF", self.src.len())),
            other => {
                return Err(PErr::new(
                    format!("unexpected {} in {context} clause", other.describe()),
                    at,
                ))
            }
        }
        // Go keeps the first non-empty definition; two non-empty ones are an error.
        match self.defines.iter_mut().find(|d| d.name == name) {
            None => self.defines.push(Define { name, nodes, depth }),
            Some(old) if is_empty_tree(&old.nodes) => *old = Define { name, nodes, depth },
            Some(_) if is_empty_tree(&nodes) => {}
            Some(_) => {
                return Err(PErr::new(
                    format!("template: multiple definition of template {name:?}"),
                    at,
                ))
            }
        }
        Ok(())
    }
}

/// The source text of a pipeline, for Go's rendering of a `template` node.
pub(crate) fn pipe_text(src: &str, p: &Pipeline) -> String {
    let (Some(first), Some(last)) = (p.cmds.first(), p.cmds.last()) else {
        return String::new();
    };
    let start = p.decl.first().map_or(first.span.start, |d| d.span.start);
    src.get(start..last.span.end).unwrap_or("").to_owned()
}

/// The raw text of a token for Go's `unexpected "..." in ...` messages.
fn raw<'s>(src: &'s str, t: Option<&Token>) -> &'s str {
    t.and_then(|t| src.get(t.span.start..t.span.end))
        .unwrap_or("}}")
}

/// Decide what an action is: a pipeline, a control keyword, or a definition.
pub(crate) fn classify(
    toks: &[Token],
    at: usize,
    src: &str,
    ctx: &mut Ctx,
    top: bool,
) -> Result<Act, PErr> {
    let mut tp = Tp {
        toks,
        i: 0,
        depth: 0,
        src,
        end: at,
        ctx,
    };
    tp.skip_space();
    let Some(first) = tp.peek() else {
        return Err(PErr::new("missing value for command", at));
    };
    let Tok::Ident(word) = &first.tok else {
        return Ok(Act::Pipeline(tp.pipeline("command", false)?));
    };
    let pos = first.span.start;
    let word: &str = word;
    if KEYWORDS.contains(&word) {
        tp.i += 1;
    }
    match word {
        "if" => Ok(Act::If(tp.control("if", pos)?)),
        "with" => Ok(Act::With(tp.control("with", pos)?)),
        "range" => Ok(Act::Range(tp.control("range", pos)?)),
        "else" => {
            tp.skip_space();
            match tp.peek() {
                None => Ok(Act::Else),
                Some(Token {
                    tok: Tok::Ident(w),
                    span,
                }) if matches!(&**w, "if" | "with") => {
                    tp.i += 1;
                    if &**w == "if" {
                        Ok(Act::ElseIf(tp.control("if", span.start)?))
                    } else {
                        Ok(Act::ElseWith(tp.control("with", span.start)?))
                    }
                }
                Some(t) => Err(PErr::new(
                    format!("unexpected {} in else", t.tok.describe()),
                    t.span.start,
                )),
            }
        }
        "end" => {
            tp.skip_space();
            match tp.peek() {
                None => Ok(Act::End),
                Some(t) => Err(PErr::new(
                    format!("unexpected {} in end", t.tok.describe()),
                    t.span.start,
                )),
            }
        }
        "break" | "continue" => {
            tp.skip_space();
            if let Some(t) = tp.peek() {
                return Err(PErr::new(
                    format!("unexpected {:?} in {{{{{word}}}}}", raw(src, Some(t))),
                    t.span.start,
                ));
            }
            if tp.ctx.range_depth == 0 {
                return Err(PErr::new(
                    format!("{{{{{word}}}}} outside {{{{range}}}}"),
                    pos,
                ));
            }
            Ok(if word == "break" {
                Act::Break
            } else {
                Act::Continue
            })
        }
        "define" => {
            if !top {
                return Err(PErr::new("unexpected <define> in command", pos));
            }
            let (name, _) = tp.template_name("define")?;
            tp.skip_space();
            if let Some(t) = tp.peek() {
                return Err(PErr::new(
                    format!("unexpected {:?} in define clause", raw(src, Some(t))),
                    t.span.start,
                ));
            }
            Ok(Act::Define(name))
        }
        "template" | "block" => {
            let (name, span) = tp.template_name(word)?;
            tp.skip_space();
            let pipe = match tp.peek() {
                None if word == "block" => {
                    return Err(PErr::new("missing value for block clause", pos))
                }
                None => None,
                Some(t @ Token { tok: Tok::Pipe, .. }) => {
                    return Err(PErr::new(
                        format!("unexpected {:?} in {word} clause", raw(src, Some(t))),
                        t.span.start,
                    ))
                }
                Some(_) => Some(tp.pipeline(word, false)?),
            };
            if let (true, Some(pipe)) = (word == "block", &pipe) {
                return Ok(Act::Block(name, pipe.clone(), span));
            }
            let text = match &pipe {
                Some(p) => format!("{{{{template {name:?} {}}}}}", pipe_text(src, p)),
                None => format!("{{{{template {name:?}}}}}"),
            };
            Ok(Act::Template(TemplateCall {
                name,
                pipe,
                span,
                text: text.into(),
            }))
        }
        _ => Ok(Act::Pipeline(tp.pipeline("command", false)?)),
    }
}

impl Tp<'_> {
    /// The pipeline of `if`, `with` or `range`.
    pub(crate) fn control(&mut self, context: &str, at: usize) -> Result<Pipeline, PErr> {
        self.skip_space();
        if self.peek().is_none() {
            return Err(PErr::new(format!("missing value for {context}"), at));
        }
        self.pipeline(context, false)
    }

    /// The quoted name after `define`, `template` or `block`.
    fn template_name(&mut self, context: &str) -> Result<(Box<str>, Span), PErr> {
        self.skip_space();
        match self.peek() {
            Some(Token {
                tok: Tok::Str(s),
                span,
            }) => {
                self.i += 1;
                Ok((s.clone(), *span))
            }
            t => Err(PErr::new(
                format!("unexpected {:?} in {context} clause", raw(self.src, t)),
                self.pos(),
            )),
        }
    }
}
