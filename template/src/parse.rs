//! The parse tree and the parser: actions, `if`/`else`/`end`, pipelines, commands, operands.

use super::*;

#[derive(Debug, Clone)]
pub(crate) struct Pipeline {
    pub(crate) cmds: Vec<Command>,
    /// Variables the pipeline declares (`:=`) or assigns (`=`) its value to.
    pub(crate) decl: Box<[Var]>,
    pub(crate) assign: bool,
}

/// A variable reference, resolved to its name's id when parsing.
#[derive(Debug, Clone)]
pub(crate) struct Var {
    pub(crate) id: u32,
    pub(crate) name: Box<str>,
    pub(crate) span: Span,
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
    /// Where Go reports the operand's errors.
    pub(crate) pos: usize,
}

#[derive(Debug, Clone)]
pub(crate) enum Term {
    /// `.` or `$`, with the record fields of the chain already resolved.
    Record(Base),
    Lit(Lit),
    Pipe(Box<Pipeline>),
    /// A function name used as an argument: called with no arguments.
    Func(Func),
    /// Dot where it is not known to be the record (in `with`, `range`, definitions).
    Dot,
    /// A variable, `$` included where it is not known to be the record.
    Var(Var),
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

/// The token parser of one action.
pub(crate) struct Tp<'t> {
    pub(crate) toks: &'t [Token],
    pub(crate) i: usize,
    pub(crate) depth: usize,
    pub(crate) src: &'t str,
    /// Where to report errors at the end of the action.
    pub(crate) end: usize,
    pub(crate) ctx: &'t mut Ctx,
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

    /// Go's declarations at the start of a pipeline: `$x :=`, `$x =`, and in `range`
    /// `$i, $v :=` (or `=`).
    pub(crate) fn declarations(&mut self, context: &str) -> Result<(Box<[Var]>, bool), PErr> {
        let mut decl: Vec<Var> = Vec::new();
        let start = self.i;
        loop {
            self.skip_space();
            let Some(Token {
                tok: Tok::Var(name),
                span,
            }) = self.peek()
            else {
                break;
            };
            let (name, span) = (name.clone(), *span);
            let var_at = self.i;
            self.i += 1;
            self.skip_space();
            match self.peek().map(|t| &t.tok) {
                Some(tok @ (Tok::Declare | Tok::Assign)) => {
                    let assign = matches!(tok, Tok::Assign);
                    self.i += 1;
                    decl.push(self.declare(name, span));
                    return Ok((decl.into_boxed_slice(), assign));
                }
                Some(Tok::Comma) => {
                    self.i += 1;
                    decl.push(self.declare(name, span));
                    if context == "range" && decl.len() < 2 {
                        self.skip_space();
                        match self.peek().map(|t| &t.tok) {
                            None | Some(Tok::Var(_) | Tok::RParen) => continue,
                            _ => {
                                return Err(PErr::new(
                                    "range can only initialize variables",
                                    self.pos(),
                                ))
                            }
                        }
                    }
                    return Err(PErr::new(
                        format!("too many declarations in {context}"),
                        span.start,
                    ));
                }
                _ => {
                    self.i = var_at;
                    break;
                }
            }
        }
        if decl.is_empty() {
            self.i = start;
        }
        Ok((decl.into_boxed_slice(), false))
    }

    fn declare(&mut self, name: Box<str>, span: Span) -> Var {
        let id = self.ctx.id(&name);
        self.ctx.scope.push(id);
        self.ctx.uses_vars = true;
        Var { id, name, span }
    }

    pub(crate) fn pipeline(&mut self, context: &str, nested: bool) -> Result<Pipeline, PErr> {
        let (decl, assign) = self.declarations(context)?;
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
        Ok(Pipeline { cmds, decl, assign })
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
            Root,
            Var(Var),
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
            Tok::Var(name) if name.is_empty() && self.ctx.root_static => Head::Root,
            Tok::Var(name) => match self.ctx.lookup(name) {
                Some(mut var) => {
                    self.ctx.uses_vars = true;
                    var.span = tok.span;
                    Head::Var(var)
                }
                None => return Err(PErr::new(format!("undefined variable \"${name}\""), start)),
            },
            Tok::Str(s) => Head::Lit(Lit::Str(s.clone())),
            Tok::Int(i) => Head::Lit(Lit::Int(*i)),
            Tok::Float(f) => Head::Lit(Lit::Float(*f)),
            Tok::Bool(b) => Head::Lit(Lit::Bool(*b)),
            Tok::Nil => Head::Lit(Lit::Nil),
            Tok::Ident(name) => match Func::lookup(name) {
                Some(f) => Head::Func(f),
                None if KEYWORDS.contains(&&**name) => {
                    return Err(PErr::new(format!("unexpected <{name}> in operand"), start))
                }
                None => return Err(PErr::new(format!("function {name:?} not defined"), start)),
            },
            Tok::LParen => {
                if self.depth >= MAX_DEPTH {
                    return Err(PErr::new("parentheses nested too deeply", start));
                }
                self.depth += 1;
                let p = self.pipeline("parenthesized pipeline", true)?;
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
        // Go reports errors of a field chain at its second element.
        let mut pos = start;
        while let Some(Token {
            tok: Tok::Field(name),
            span,
        }) = self.peek()
        {
            if pos == start {
                pos = span.start;
            }
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
            Head::Dot if !self.ctx.dot_static => (Term::Dot, chain),
            Head::Dot | Head::Root => {
                let (base, rest) = resolve(chain);
                (Term::Record(base), rest)
            }
            Head::Var(var) => (Term::Var(var), chain),
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
            pos,
        })
    }
}

/// Compile a regex function's pattern when it is a string literal.
pub(crate) fn precompile(func: Func, args: &[Operand]) -> Option<Result<Regex, String>> {
    if !matches!(
        func,
        Func::RegexMatch
            | Func::RegexFind
            | Func::RegexReplaceAll
            | Func::RegexFindAll
            | Func::RegexSplit
            | Func::RegexReplaceAllLiteral
            | Func::MustRegexMatch
            | Func::MustRegexFind
            | Func::MustRegexFindAll
            | Func::MustRegexReplaceAll
            | Func::MustRegexReplaceAllLiteral
            | Func::MustRegexSplit
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
