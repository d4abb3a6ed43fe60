//! Walking the tree against a record: actions, control structures, variables and
//! `template` calls.

use super::*;

pub(crate) type Res<'a> = Result<Value<'a>, Fail>;

/// How a list ended: normally, or at a `{{break}}` or `{{continue}}` of a `range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Normal,
    Break,
    Continue,
}

/// How deeply `template` calls and the control structures they run may nest, together
/// (Go allows 100000 template calls on its growable stacks; this keeps to a thread's
/// stack).
pub(crate) const MAX_EXEC_DEPTH: usize = 250;

pub(crate) struct Exec<'a> {
    pub(crate) template: &'a Template,
    pub(crate) record: &'a Record,
    /// Dot where it is not resolved when parsing (in `with`, `range` and definitions).
    pub(crate) dot: Value<'a>,
    /// Go's variable stack: (name id, value), innermost last.
    pub(crate) vars: Vec<(u32, Value<'a>)>,
    /// Where the current template's variables start.
    pub(crate) frame: usize,
    pub(crate) depth: usize,
}

impl<'a> Exec<'a> {
    pub(crate) fn new(template: &'a Template, record: &'a Record) -> Self {
        let mut vars = Vec::new();
        if template.uses_vars {
            vars.push((0, Value::Record(record)));
        }
        Exec {
            template,
            record,
            dot: Value::Record(record),
            vars,
            frame: 0,
            depth: 0,
        }
    }

    pub(crate) fn list(&mut self, nodes: &'a [Node], out: &mut String) -> Result<Flow, Fail> {
        for node in nodes {
            match node {
                Node::Text(t) => out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipeline(p)?;
                    if p.decl.is_empty() {
                        write_action(out, &v);
                    }
                }
                Node::If(n) => {
                    let flow = self.if_node(n, out)?;
                    if flow != Flow::Normal {
                        return Ok(flow);
                    }
                }
                Node::Range(n) => {
                    let flow = self.range(n, out)?;
                    if flow != Flow::Normal {
                        return Ok(flow);
                    }
                }
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
                Node::Template(call) => self.call_template(call, out)?,
            }
        }
        Ok(Flow::Normal)
    }

    /// `if` and `with`: the first true branch (dot rebound for `with`), else `else`.
    fn if_node(&mut self, n: &'a IfNode, out: &mut String) -> Result<Flow, Fail> {
        let mark = self.vars.len();
        let mut chosen = None;
        for (cond, body) in &n.branches {
            let v = self.pipeline(cond)?;
            if truthy(&v) {
                chosen = Some(if n.with {
                    let saved = std::mem::replace(&mut self.dot, v);
                    let flow = self.list(body, out);
                    self.dot = saved;
                    flow?
                } else {
                    self.list(body, out)?
                });
                break;
            }
        }
        let flow = match chosen {
            Some(flow) => flow,
            None => self.list(&n.otherwise, out)?,
        };
        self.vars.truncate(mark);
        Ok(flow)
    }

    fn range(&mut self, n: &'a RangeNode, out: &mut String) -> Result<Flow, Fail> {
        let mark = self.vars.len();
        let value = self.pipeline(&n.pipe)?;
        let inner = self.vars.len();
        let saved = self.dot.clone();
        let fail = |msg: String| pipe_fail(&n.pipe, Fail::new(msg));
        let two_vars = n.pipe.decl.len() > 1;
        let mut count = 0usize;
        macro_rules! each {
            ($key:expr, $elem:expr) => {{
                count += 1;
                if self.iteration(n, $key, $elem, inner, out)? == Flow::Break {
                    break;
                }
            }};
        }
        match &value {
            Value::List(l) => {
                for i in 0..l.len() {
                    each!(Value::Int(i as i64), l.get(i).unwrap_or(Value::Missing));
                }
            }
            Value::Map(m) => {
                for (k, v) in m.range_entries() {
                    each!(k, v);
                }
            }
            Value::Raw(b) | Value::Position(b) => {
                for (i, &byte) in b.iter().enumerate() {
                    each!(Value::Int(i as i64), Value::Int(i64::from(byte)));
                }
            }
            Value::Int(_) | Value::Operation(_) => {
                let end = match &value {
                    Value::Operation(op) => op_number(*op),
                    Value::Int(i) => *i,
                    _ => 0,
                };
                if two_vars {
                    let mut shown = String::new();
                    fmt_value(&mut shown, 'v', &Spec::default(), &value, 0);
                    return Err(fail(format!(
                        "can't use {shown} to iterate over more than one variable"
                    )));
                }
                for i in 0..end.max(0) {
                    each!(Value::Int(i), Value::Int(i));
                }
            }
            Value::Missing | Value::Nil => {}
            other => {
                let mut shown = String::new();
                fmt_value(&mut shown, 'v', &Spec::default(), other, 0);
                if matches!(other, Value::NilData) {
                    shown = "<nil>".into();
                }
                return Err(fail(format!("range can't iterate over {shown}")));
            }
        }
        self.dot = saved;
        let flow = if count == 0 {
            self.list(&n.otherwise, out)?
        } else {
            Flow::Normal
        };
        self.vars.truncate(mark);
        Ok(flow)
    }

    fn iteration(
        &mut self,
        n: &'a RangeNode,
        key: Value<'a>,
        elem: Value<'a>,
        inner: usize,
        out: &mut String,
    ) -> Result<Flow, Fail> {
        let decl = &n.pipe.decl;
        if let [first, rest @ ..] = &**decl {
            let elem = elem.clone();
            if n.pipe.assign {
                let at = |e| pipe_fail(&n.pipe, e);
                match rest.first() {
                    Some(second) => {
                        self.set_var(first, key).map_err(at)?;
                        self.set_var(second, elem).map_err(at)?;
                    }
                    None => self.set_var(first, elem).map_err(at)?,
                }
            } else {
                // The range's variables are the top of the stack: element last.
                self.vars[inner - 1].1 = elem;
                if !rest.is_empty() {
                    self.vars[inner - 2].1 = key;
                }
            }
        }
        self.dot = elem;
        let flow = self.list(&n.body, out);
        self.vars.truncate(inner);
        flow
    }

    fn call_template(&mut self, call: &'a TemplateCall, out: &mut String) -> Result<(), Fail> {
        let template = self.template;
        let Some(define) = template.defines.iter().find(|d| d.name == call.name) else {
            return Err(Fail::new(format!("template {:?} not defined", call.name))
                .at_text(call.span, &call.text));
        };
        let value = match &call.pipe {
            Some(p) => self.pipeline(p)?,
            None => Value::Missing,
        };
        if self.depth + define.depth >= MAX_EXEC_DEPTH {
            return Err(Fail::new(format!(
                "exceeded maximum template depth ({MAX_EXEC_DEPTH})"
            ))
            .at_text(call.span, &call.text));
        }
        self.depth += define.depth;
        let saved_dot = std::mem::replace(&mut self.dot, value.clone());
        let saved_frame = std::mem::replace(&mut self.frame, self.vars.len());
        self.vars.push((0, value));
        let result = self.list(&define.nodes, out);
        self.vars.truncate(self.frame);
        self.frame = saved_frame;
        self.dot = saved_dot;
        self.depth -= define.depth;
        result.map_err(|e| e.in_template(&define.name))?;
        Ok(())
    }

    fn var(&self, var: &Var) -> Res<'a> {
        match self.vars[self.frame..]
            .iter()
            .rev()
            .find(|(id, _)| *id == var.id)
        {
            Some((_, v)) => Ok(v.clone()),
            None => Err(Fail::new(format!("undefined variable: ${}", var.name))),
        }
    }

    fn set_var(&mut self, var: &Var, value: Value<'a>) -> Result<(), Fail> {
        match self.vars[self.frame..]
            .iter_mut()
            .rev()
            .find(|(id, _)| *id == var.id)
        {
            Some(slot) => {
                slot.1 = value;
                Ok(())
            }
            None => Err(Fail::new(format!("undefined variable: ${}", var.name))),
        }
    }

    pub(crate) fn pipeline(&mut self, p: &'a Pipeline) -> Res<'a> {
        let mut value = None;
        for cmd in &p.cmds {
            value = Some(self.command(cmd, value.take())?);
        }
        let value = value.unwrap_or(Value::Missing);
        if !p.decl.is_empty() {
            for var in p.decl.iter() {
                if p.assign {
                    self.set_var(var, value.clone())
                        .map_err(|e| pipe_fail(p, e))?;
                } else {
                    self.vars.push((var.id, value.clone()));
                }
            }
        }
        Ok(value)
    }

    pub(crate) fn command(&mut self, cmd: &'a Command, piped: Option<Value<'a>>) -> Res<'a> {
        match &cmd.kind {
            CmdKind::Operand(op) => self.operand(op),
            CmdKind::Call(call) => self.call(call, piped).map_err(|e| e.at(cmd.span)),
        }
    }

    pub(crate) fn operand(&mut self, op: &'a Operand) -> Res<'a> {
        let mut v = match &op.term {
            Term::Record(base) => base.eval(self.record),
            Term::Lit(lit) => Ok(match lit {
                Lit::Str(s) => Value::Str(Cow::Borrowed(s)),
                Lit::Int(i) => Value::Int(*i),
                Lit::Float(f) => Value::Float(*f),
                Lit::Bool(b) => Value::Bool(*b),
                Lit::Nil => Value::Nil,
            }),
            Term::Pipe(p) => self.pipeline(p),
            Term::Func(f) => self.apply(*f, None, Args::with_capacity(0)),
            Term::Dot => Ok(self.dot.clone()),
            Term::Var(var) => self.var(var),
        }
        .map_err(|e| e.at_pos(op.span, op.pos))?;
        for name in op.chain.iter() {
            v = field(v, name).map_err(|e| e.at_pos(op.span, op.pos))?;
        }
        Ok(v)
    }

    pub(crate) fn call(&mut self, call: &'a Call, piped: Option<Value<'a>>) -> Res<'a> {
        if matches!(call.func, Func::And | Func::Or) {
            // Short-circuit: arguments are evaluated only until one decides.
            let total = call.args.len() + usize::from(piped.is_some());
            if total == 0 {
                return Err(arity_at_least(call.func, 1, 0));
            }
            let decides = call.func == Func::Or;
            let mut last = Value::Missing;
            for arg in &call.args {
                let v = self.operand(arg)?;
                if truthy(&v) == decides {
                    return Ok(v);
                }
                last = v;
            }
            return Ok(piped.unwrap_or(last));
        }
        let mut args = Args::with_capacity(call.args.len() + 1);
        for arg in &call.args {
            args.push(self.operand(arg)?);
        }
        if let Some(p) = piped {
            args.push(p);
        }
        self.apply(call.func, Some(call), args)
    }
}

/// A pipeline's own error, reported at its last command as Go does.
pub(crate) fn pipe_fail(p: &Pipeline, fail: Fail) -> Fail {
    match p.cmds.last() {
        Some(Command {
            kind: CmdKind::Operand(op),
            ..
        }) => fail.at_pos(op.span, op.pos),
        Some(cmd) => fail.at(cmd.span),
        None => fail,
    }
}
