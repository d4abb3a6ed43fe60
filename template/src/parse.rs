//! The parse tree and the parser: actions, `if`/`else`/`end`, pipelines, commands, operands.

use super::*;

#[derive(Debug, Clone)]
pub(crate) enum Node {
    Text(Box<str>),
    Action(Pipeline),
    If(Box<IfNode>),
}

#[derive(Debug, Clone)]
pub(crate) struct IfNode {
    pub(crate) branches: Vec<(Pipeline, Vec<Node>)>,
    pub(crate) otherwise: Vec<Node>,
}

#[derive(Debug, Clone)]
pub(crate) struct Pipeline {
    pub(crate) cmds: Vec<Command>,
}

#[derive(Debug, Clone)]
pub(crate) struct Command {
    pub(crate) kind: CmdKind,
    pub(crate) span: Span,
}

#[derive(Debug, Clone)]
pub(crate) enum CmdKind {
    Call(Call),
    Operand(Operand),
}

#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) func: Func,
    pub(crate) args: Vec<Operand>,
    /// The compiled pattern when a regex function's pattern is a string literal.
    pub(crate) regex: Option<Result<Regex, String>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Operand {
    pub(crate) term: Term,
    /// Field names applied to the term's value, in order.
    pub(crate) chain: Box<[Box<str>]>,
    pub(crate) span: Span,
}

#[derive(Debug, Clone)]
pub(crate) enum Term {
    /// `.` or `$`, with the record fields of the chain already resolved.
    Record(Base),
    Lit(Lit),
    Pipe(Box<Pipeline>),
    /// A function name used as an argument: called with no arguments.
    Func(Func),
}

#[derive(Debug, Clone)]
pub(crate) enum Lit {
    Str(Box<str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
}

/// Where a field chain on the record lands, resolved when parsing.
#[derive(Debug, Clone)]
pub(crate) enum Base {
    Record,
    Position,
    PositionString,
    Operation,
    OperationString,
    Metadata,
    Key,
    Payload,
    Before,
    After,
    /// A field the record type does not have: an exec error when evaluated.
    Bad(Box<str>),
}

/// Resolve the record part of a field chain; returns the rest of the chain.
pub(crate) fn resolve(chain: Vec<Box<str>>) -> (Base, Vec<Box<str>>) {
    let mut base = Base::Record;
    let mut used = 0;
    for name in &chain {
        let next = match (&base, &**name) {
            (Base::Record, "Position") => Base::Position,
            (Base::Record, "Operation") => Base::Operation,
            (Base::Record, "Metadata") => Base::Metadata,
            (Base::Record, "Key") => Base::Key,
            (Base::Record, "Payload") => Base::Payload,
            (Base::Record, other) => {
                Base::Bad(format!("can't evaluate field {other} in type opencdc.Record").into())
            }
            (Base::Payload, "Before") => Base::Before,
            (Base::Payload, "After") => Base::After,
            (Base::Payload, other) => {
                Base::Bad(format!("can't evaluate field {other} in type opencdc.Change").into())
            }
            (Base::Position, "String") => Base::PositionString,
            (Base::Operation, "String") => Base::OperationString,
            _ => break,
        };
        base = next;
        used += 1;
        if matches!(base, Base::Bad(_)) {
            break;
        }
    }
    let rest = chain.into_iter().skip(used).collect();
    (base, rest)
}

pub(crate) enum Act {
    Pipeline(Pipeline),
    If(Pipeline),
    ElseIf(Pipeline),
    Else,
    End,
}

pub(crate) enum Stop {
    Eof,
    Else(usize),
    ElseIf(Pipeline, usize),
    End(usize),
}

pub(crate) struct TreeParser<'s> {
    pub(crate) src: &'s str,
    pub(crate) items: std::vec::IntoIter<Item>,
    pub(crate) depth: usize,
}

impl TreeParser<'_> {
    pub(crate) fn top(&mut self) -> Result<Vec<Node>, PErr> {
        let (nodes, stop) = self.list()?;
        match stop {
            Stop::Eof => Ok(nodes),
            Stop::End(at) => Err(PErr::new("unexpected {{end}}", at)),
            Stop::Else(at) | Stop::ElseIf(_, at) => Err(PErr::new("unexpected {{else}}", at)),
        }
    }

    pub(crate) fn list(&mut self) -> Result<(Vec<Node>, Stop), PErr> {
        let mut nodes = Vec::new();
        while let Some(item) = self.items.next() {
            match item {
                Item::Text(t) => nodes.push(Node::Text(t)),
                Item::Action { toks, at } => match classify(&toks, at, self.src)? {
                    Act::Pipeline(p) => nodes.push(Node::Action(p)),
                    Act::If(p) => nodes.push(self.if_node(p, at)?),
                    Act::Else => return Ok((nodes, Stop::Else(at))),
                    Act::ElseIf(p) => return Ok((nodes, Stop::ElseIf(p, at))),
                    Act::End => return Ok((nodes, Stop::End(at))),
                },
            }
        }
        Ok((nodes, Stop::Eof))
    }

    pub(crate) fn if_node(&mut self, cond: Pipeline, at: usize) -> Result<Node, PErr> {
        if self.depth >= MAX_DEPTH {
            return Err(PErr::new("{{if}} nested too deeply", at));
        }
        self.depth += 1;
        let mut branches = Vec::new();
        let mut cond = cond;
        let unclosed = || PErr::new("unexpected EOF: {{if}} has no matching {{end}}", at);
        let otherwise = loop {
            let (body, stop) = self.list()?;
            branches.push((cond, body));
            match stop {
                Stop::End(_) => break Vec::new(),
                Stop::ElseIf(p, _) => cond = p,
                Stop::Else(_) => {
                    let (body, stop) = self.list()?;
                    match stop {
                        Stop::End(_) => break body,
                        Stop::Else(p) | Stop::ElseIf(_, p) => {
                            return Err(PErr::new("expected {{end}}; found {{else}}", p))
                        }
                        Stop::Eof => return Err(unclosed()),
                    }
                }
                Stop::Eof => return Err(unclosed()),
            }
        };
        self.depth -= 1;
        Ok(Node::If(Box::new(IfNode {
            branches,
            otherwise,
        })))
    }
}

/// Decide what an action is: a pipeline, or an `if`/`else`/`end` delimiter.
pub(crate) fn classify(toks: &[Token], at: usize, src: &str) -> Result<Act, PErr> {
    if let Some(t) = toks
        .iter()
        .find(|t| matches!(t.tok, Tok::Assign | Tok::Declare | Tok::Comma))
    {
        return Err(PErr::new(
            "variable declarations are not supported by this template subset",
            t.span.start,
        ));
    }
    let mut tp = Tp {
        toks,
        i: 0,
        depth: 0,
        src,
        end: at,
    };
    tp.skip_space();
    let Some(first) = tp.peek() else {
        return Err(PErr::new("missing value for command", at));
    };
    if let Tok::Ident(word) = &first.tok {
        let pos = first.span.start;
        match &**word {
            "if" => {
                tp.i += 1;
                return Ok(Act::If(tp.condition(pos)?));
            }
            "else" => {
                tp.i += 1;
                tp.skip_space();
                return match tp.peek() {
                    None => Ok(Act::Else),
                    Some(Token {
                        tok: Tok::Ident(w),
                        span,
                    }) => {
                        if &**w == "if" {
                            tp.i += 1;
                            Ok(Act::ElseIf(tp.condition(span.start)?))
                        } else if UNSUPPORTED.contains(&&**w) {
                            Err(unsupported(w, span.start))
                        } else {
                            Err(PErr::new(format!("unexpected {w:?} in else"), span.start))
                        }
                    }
                    Some(t) => Err(PErr::new(
                        format!("unexpected {} in else", t.tok.describe()),
                        t.span.start,
                    )),
                };
            }
            "end" => {
                tp.i += 1;
                tp.skip_space();
                return match tp.peek() {
                    None => Ok(Act::End),
                    Some(t) => Err(PErr::new(
                        format!("unexpected {} in end", t.tok.describe()),
                        t.span.start,
                    )),
                };
            }
            w if UNSUPPORTED.contains(&w) => return Err(unsupported(w, pos)),
            _ => {}
        }
    }
    Ok(Act::Pipeline(tp.pipeline(false)?))
}

pub(crate) fn unsupported(word: &str, at: usize) -> PErr {
    PErr::new(
        format!("{{{{{word}}}}} is not supported by this template subset (only if/else/end)"),
        at,
    )
}

/// The token parser of one action.
pub(crate) struct Tp<'t> {
    pub(crate) toks: &'t [Token],
    pub(crate) i: usize,
    pub(crate) depth: usize,
    pub(crate) src: &'t str,
    /// Where to report errors at the end of the action.
    pub(crate) end: usize,
}

impl<'t> Tp<'t> {
    pub(crate) fn peek(&self) -> Option<&'t Token> {
        self.toks.get(self.i)
    }

    pub(crate) fn pos(&self) -> usize {
        self.peek().map_or(self.end, |t| t.span.start)
    }

    pub(crate) fn skip_space(&mut self) {
        while matches!(
            self.peek(),
            Some(Token {
                tok: Tok::Space,
                ..
            })
        ) {
            self.i += 1;
        }
    }

    pub(crate) fn condition(&mut self, at: usize) -> Result<Pipeline, PErr> {
        self.skip_space();
        if self.peek().is_none() {
            return Err(PErr::new("missing value for if", at));
        }
        self.pipeline(false)
    }

    pub(crate) fn pipeline(&mut self, nested: bool) -> Result<Pipeline, PErr> {
        let mut cmds: Vec<Command> = Vec::new();
        loop {
            let cmd = self.command()?;
            if !cmds.is_empty() && matches!(cmd.kind, CmdKind::Operand(_)) {
                return Err(PErr::new(
                    format!(
                        "non executable command in pipeline stage {}",
                        cmds.len() + 1
                    ),
                    cmd.span.start,
                ));
            }
            cmds.push(cmd);
            self.skip_space();
            match self.peek() {
                Some(Token { tok: Tok::Pipe, .. }) => self.i += 1,
                Some(Token {
                    tok: Tok::RParen,
                    span,
                }) => {
                    if nested {
                        break;
                    }
                    return Err(PErr::new("unexpected right paren", span.start));
                }
                None => {
                    if nested {
                        return Err(PErr::new("unclosed left paren", self.end));
                    }
                    break;
                }
                Some(t) => {
                    return Err(PErr::new(
                        format!("unexpected {} in command", t.tok.describe()),
                        t.span.start,
                    ))
                }
            }
        }
        Ok(Pipeline { cmds })
    }

    pub(crate) fn command(&mut self) -> Result<Command, PErr> {
        let mut ops: Vec<Operand> = Vec::new();
        loop {
            self.skip_space();
            match self.peek() {
                None
                | Some(Token {
                    tok: Tok::Pipe | Tok::RParen,
                    ..
                }) => break,
                Some(_) => {}
            }
            ops.push(self.operand()?);
            match self.peek() {
                None
                | Some(Token {
                    tok: Tok::Space | Tok::Pipe | Tok::RParen,
                    ..
                }) => {}
                Some(t) => {
                    return Err(PErr::new(
                        format!("unexpected {} in operand", t.tok.describe()),
                        t.span.start,
                    ))
                }
            }
        }
        let (Some(first_span), Some(last_span)) =
            (ops.first().map(|o| o.span), ops.last().map(|o| o.span))
        else {
            return Err(PErr::new("missing value for command", self.pos()));
        };
        let span = Span {
            start: first_span.start,
            end: last_span.end,
        };
        let mut it = ops.into_iter();
        let Some(first) = it.next() else {
            return Err(PErr::new("missing value for command", self.pos()));
        };
        let kind = match first.term {
            Term::Func(func) => {
                let args: Vec<Operand> = it.collect();
                let regex = precompile(func, &args);
                CmdKind::Call(Call { func, args, regex })
            }
            Term::Lit(Lit::Nil) => return Err(PErr::new("nil is not a command", span.start)),
            _ => {
                if it.next().is_some() {
                    let text = self.src.get(first.span.start..first.span.end).unwrap_or("");
                    return Err(PErr::new(
                        format!("can't give argument to non-function {text}"),
                        span.start,
                    ));
                }
                CmdKind::Operand(first)
            }
        };
        Ok(Command { kind, span })
    }

    pub(crate) fn operand(&mut self) -> Result<Operand, PErr> {
        enum Head {
            Dot,
            Lit(Lit),
            Pipe(Pipeline),
            Func(Func),
        }
        let Some(tok) = self.peek() else {
            return Err(PErr::new("missing operand", self.end));
        };
        self.i += 1;
        let start = tok.span.start;
        let mut end = tok.span.end;
        let mut chain: Vec<Box<str>> = Vec::new();
        let head = match &tok.tok {
            Tok::Dot => Head::Dot,
            Tok::Field(name) => {
                chain.push(name.clone());
                Head::Dot
            }
            Tok::Var(name) if name.is_empty() => Head::Dot,
            Tok::Var(name) => {
                return Err(PErr::new(
                    format!("variables are not supported by this template subset: ${name}"),
                    start,
                ))
            }
            Tok::Str(s) => Head::Lit(Lit::Str(s.clone())),
            Tok::Int(i) => Head::Lit(Lit::Int(*i)),
            Tok::Float(f) => Head::Lit(Lit::Float(*f)),
            Tok::Bool(b) => Head::Lit(Lit::Bool(*b)),
            Tok::Nil => Head::Lit(Lit::Nil),
            Tok::Ident(name) => match Func::lookup(name) {
                Some(f) => Head::Func(f),
                None if UNSUPPORTED.contains(&&**name)
                    || matches!(&**name, "if" | "else" | "end") =>
                {
                    return Err(PErr::new(
                        format!("unexpected keyword {name:?} in command"),
                        start,
                    ))
                }
                None => return Err(PErr::new(format!("function {name:?} not defined"), start)),
            },
            Tok::LParen => {
                if self.depth >= MAX_DEPTH {
                    return Err(PErr::new("parentheses nested too deeply", start));
                }
                self.depth += 1;
                let p = self.pipeline(true)?;
                self.depth -= 1;
                match self.peek() {
                    Some(Token {
                        tok: Tok::RParen,
                        span,
                    }) => {
                        end = span.end;
                        self.i += 1;
                    }
                    _ => return Err(PErr::new("unclosed left paren", start)),
                }
                Head::Pipe(p)
            }
            Tok::RParen => return Err(PErr::new("unexpected right paren", start)),
            other => {
                return Err(PErr::new(
                    format!("unexpected {} in operand", other.describe()),
                    start,
                ))
            }
        };
        while let Some(Token {
            tok: Tok::Field(name),
            span,
        }) = self.peek()
        {
            chain.push(name.clone());
            end = span.end;
            self.i += 1;
        }
        if let Some(Token {
            tok: Tok::Dot,
            span,
        }) = self.peek()
        {
            return Err(PErr::new("unexpected . after term", span.start));
        }
        let span = Span { start, end };
        let after_term = |chain: &[Box<str>]| {
            if chain.is_empty() {
                Ok(())
            } else {
                Err(PErr::new(
                    format!("unexpected .{} after term", chain.join(".")),
                    start,
                ))
            }
        };
        let (term, chain) = match head {
            Head::Dot => {
                let (base, rest) = resolve(chain);
                (Term::Record(base), rest)
            }
            Head::Lit(lit) => {
                after_term(&chain)?;
                (Term::Lit(lit), chain)
            }
            Head::Func(f) => {
                after_term(&chain)?;
                (Term::Func(f), chain)
            }
            Head::Pipe(p) => (Term::Pipe(Box::new(p)), chain),
        };
        Ok(Operand {
            term,
            chain: chain.into_boxed_slice(),
            span,
        })
    }
}

/// Compile a regex function's pattern when it is a string literal.
pub(crate) fn precompile(func: Func, args: &[Operand]) -> Option<Result<Regex, String>> {
    if !matches!(
        func,
        Func::RegexMatch | Func::RegexFind | Func::RegexReplaceAll
    ) {
        return None;
    }
    match args.first() {
        Some(Operand {
            term: Term::Lit(Lit::Str(pattern)),
            chain,
            ..
        }) if chain.is_empty() => Some(compile_regex(pattern)),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
