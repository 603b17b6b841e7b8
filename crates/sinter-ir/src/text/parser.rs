//! The parser: `.sir` text to a graph.
//!
//! A recursive-descent parser over the streaming lexer with one token of lookahead (two where a line
//! starts with an op name). It builds the graph as it reads, so every name must be defined before it
//! is used; the text's order is a topological order. Errors carry the byte offset of the token they
//! are about and become a line and column only when reported.

use super::lexer::{Lexer, Tok, Token};
use super::{confined_relative_path, write_name, ParseError, ParseOptions};
use crate::{
    AttrValue, DType, Dim, Graph, GraphError, Op, OpAttrError, Shape, Tensor, TensorData,
    TensorType, Value,
};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// Parses a graph from `.sir` text. External weights are read relative to `options.base_dir`.
pub fn parse_graph(src: &str, options: &ParseOptions) -> Result<Graph, ParseError> {
    let mut parser = Parser::new(src, options);
    parser
        .parse_file()
        .map_err(|err| ParseError::at(src, err.pos, err.message))?;
    Ok(parser.graph)
}

/// Reads and parses a `.sir` file; external weights are read from the file's folder.
pub fn parse_file(path: &Path) -> Result<Graph, ParseError> {
    let src = std::fs::read_to_string(path).map_err(|err| ParseError {
        line: 0,
        col: 0,
        message: format!("cannot read `{}`: {err}", path.display()),
    })?;
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    parse_graph(
        &src,
        &ParseOptions {
            base_dir: Some(base_dir),
        },
    )
}

/// An error at a byte offset.
struct PErr {
    pos: usize,
    message: String,
}

type PResult<T> = Result<T, PErr>;

/// A value name as written. `%0` (digits: a number the printer assigned) and `%"0"` (a name that
/// happens to be digits) are different names, which is why the printer quotes all-digit input names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum ValueName {
    Numbered(String),
    Named(String),
}

impl fmt::Display for ValueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueName::Numbered(digits) => write!(f, "%{digits}"),
            ValueName::Named(name) => {
                f.write_str("%")?;
                if name.bytes().all(|b| b.is_ascii_digit()) {
                    super::write_quoted(f, name)
                } else {
                    write_name(f, name)
                }
            }
        }
    }
}

/// `@name` for messages.
fn const_text(name: &str) -> String {
    let mut out = String::from("@");
    let _ = write_name(&mut out, name);
    out
}

/// A float literal in the precision it was written in: `nan32(0x..)` is an f32 bit pattern,
/// everything else is read as f64 (attribute values) or directly as the tensor's dtype.
#[derive(Clone, Copy)]
enum FloatLit {
    F64(f64),
    F32(f32),
}

struct Parser<'a, 'o> {
    src: &'a str,
    options: &'o ParseOptions,
    lexer: Lexer<'a>,
    /// The current token, not yet consumed.
    tok: Token<'a>,
    graph: Graph,
    /// Values by name, with the offset of their definition.
    values: HashMap<ValueName, (Value, usize)>,
    /// Constants by name, with the offset of their definition.
    consts: HashMap<String, (Value, usize)>,
    /// Input names, for a clear message when a constant reuses one (the graph requires them distinct).
    input_names: HashMap<String, usize>,
    /// Output names, with the offset of their declaration.
    output_names: HashMap<String, usize>,
    /// External weight files read so far, by the name written in the text.
    files: HashMap<String, Vec<u8>>,
}

impl<'a, 'o> Parser<'a, 'o> {
    fn new(src: &'a str, options: &'o ParseOptions) -> Parser<'a, 'o> {
        let mut lexer = Lexer::new(src);
        let tok = lexer.next_token();
        Parser {
            src,
            options,
            lexer,
            tok,
            graph: Graph::default(),
            values: HashMap::new(),
            consts: HashMap::new(),
            input_names: HashMap::new(),
            output_names: HashMap::new(),
            files: HashMap::new(),
        }
    }

    // ---- token helpers ----

    fn bump(&mut self) -> Token<'a> {
        let next = self.lexer.next_token();
        std::mem::replace(&mut self.tok, next)
    }

    /// The token after the current one.
    fn peek_second(&self) -> Tok<'a> {
        self.lexer.clone().next_token().tok
    }

    fn err(&self, pos: usize, message: impl Into<String>) -> PErr {
        PErr {
            pos,
            message: message.into(),
        }
    }

    /// "expected X, found Y" at the current token; a malformed current token reports itself instead.
    fn unexpected(&self, expected: &str) -> PErr {
        match &self.tok.tok {
            Tok::Invalid(message) => self.err(self.tok.pos, message.clone()),
            found => self.err(self.tok.pos, format!("expected {expected}, found {found}")),
        }
    }

    /// Consumes `want` or reports "expected `want` {context}, found ...".
    fn expect(&mut self, want: Tok<'static>, context: &str) -> PResult<usize> {
        if self.tok.tok == want {
            Ok(self.bump().pos)
        } else {
            let sep = if context.is_empty() { "" } else { " " };
            Err(self.unexpected(&format!("{want}{sep}{context}")))
        }
    }

    fn at_keyword(&self, keyword: &str) -> bool {
        self.tok.tok == Tok::Ident(keyword)
    }

    fn expect_keyword(&mut self, keyword: &str, context: &str) -> PResult<usize> {
        if self.at_keyword(keyword) {
            Ok(self.bump().pos)
        } else {
            Err(self.unexpected(&format!("`{keyword}` {context}")))
        }
    }

    /// NAME := IDENT | STRING
    fn name(&mut self, what: &str) -> PResult<String> {
        match &self.tok.tok {
            Tok::Ident(s) => {
                let s = s.to_string();
                self.bump();
                Ok(s)
            }
            Tok::Str(s) => {
                let s = s.to_string();
                self.bump();
                Ok(s)
            }
            _ => Err(self.unexpected(what)),
        }
    }

    fn string(&mut self, what: &str) -> PResult<String> {
        match &self.tok.tok {
            Tok::Str(s) => {
                let s = s.to_string();
                self.bump();
                Ok(s)
            }
            _ => Err(self.unexpected(what)),
        }
    }

    fn graph_error(&self, pos: usize, err: GraphError) -> PErr {
        self.err(pos, err.to_string())
    }

    // ---- items ----

    fn parse_file(&mut self) -> PResult<()> {
        self.expect_keyword("graph", "to start the file (`graph NAME { ... }`)")?;
        self.graph.name = self.name("a graph name")?;
        self.expect(Tok::LBrace, "to open the graph body")?;
        loop {
            match &self.tok.tok {
                Tok::RBrace => {
                    self.bump();
                    break;
                }
                Tok::Ident("input") => self.parse_input()?,
                Tok::Ident("const") => self.parse_const()?,
                Tok::Ident("output") => self.parse_output()?,
                Tok::NumberedRef(_) | Tok::NamedRef(_) => self.parse_op_item()?,
                Tok::Ident(_) if self.peek_second() == Tok::LParen => self.parse_op_item()?,
                Tok::Eof => return Err(self.unexpected("`}` to close the graph")),
                _ => return Err(self.unexpected(
                    "`input`, `const`, `output`, an op line like `%0: f32[2] = relu(%x)`, or `}`",
                )),
            }
        }
        if self.tok.tok != Tok::Eof {
            return Err(self.unexpected("end of file after the graph's closing `}`"));
        }
        Ok(())
    }

    /// `input %name: type`
    fn parse_input(&mut self) -> PResult<()> {
        self.bump();
        let pos = self.tok.pos;
        let name = match &self.tok.tok {
            Tok::NamedRef(name) => name.to_string(),
            Tok::NumberedRef(digits) => {
                return Err(self.err(
                    pos,
                    format!("an input needs a name, not a number: write `%\"{digits}\"` for an input named {digits}"),
                ))
            }
            _ => return Err(self.unexpected("an input name like `%x`")),
        };
        self.bump();
        self.expect(Tok::Colon, "before the input's type")?;
        let ty = self.parse_type()?;
        let key = ValueName::Named(name.clone());
        if let Some(&(_, first)) = self.values.get(&key) {
            return Err(self.err(
                pos,
                format!(
                    "value {key} is defined twice; first at {}",
                    self.line_of(first)
                ),
            ));
        }
        if let Some(&(_, first)) = self.consts.get(&name) {
            return Err(self.err(
                pos,
                format!(
                    "input {key} has the name of constant {}, defined at {}; inputs and constants need distinct names",
                    const_text(&name),
                    self.line_of(first)
                ),
            ));
        }
        let value = self
            .graph
            .add_input(name.clone(), ty)
            .map_err(|e| self.graph_error(pos, e))?;
        self.values.insert(key, (value, pos));
        self.input_names.insert(name, pos);
        Ok(())
    }

    /// `const @name: type = init`
    fn parse_const(&mut self) -> PResult<()> {
        self.bump();
        let pos = self.tok.pos;
        let Tok::ConstRef(name) = &self.tok.tok else {
            return Err(self.unexpected("a constant name like `@w`"));
        };
        let name = name.to_string();
        self.bump();
        if let Some(&(_, first)) = self.consts.get(&name) {
            return Err(self.err(
                pos,
                format!(
                    "const {} is defined twice; first at {}",
                    const_text(&name),
                    self.line_of(first)
                ),
            ));
        }
        if let Some(&first) = self.input_names.get(&name) {
            return Err(self.err(
                pos,
                format!(
                    "const {} has the name of input %{name}, defined at {}; inputs and constants need distinct names",
                    const_text(&name),
                    self.line_of(first)
                ),
            ));
        }
        self.expect(Tok::Colon, "before the constant's type")?;
        let type_pos = self.tok.pos;
        let ty = self.parse_type()?;
        let dims = self.static_dims(&name, &ty, type_pos)?;
        let n_elements = dims
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| {
                self.err(
                    type_pos,
                    format!(
                        "const {} has more elements than fit in memory",
                        const_text(&name)
                    ),
                )
            })?;
        self.expect(Tok::Equals, "before the constant's value")?;
        let init_pos = self.tok.pos;
        let data = if self.tok.tok == Tok::LBracket {
            self.parse_elements(&name, &ty, n_elements)?
        } else if self.at_keyword("external") {
            self.parse_external(&name, &ty, n_elements)?
        } else {
            return Err(self
                .unexpected("`[` with the constant's elements or `external(\"file\", offset=N)`"));
        };
        let tensor = Tensor::new(dims, data).map_err(|e| self.err(init_pos, e.to_string()))?;
        let value = self
            .graph
            .add_const(name.clone(), tensor)
            .map_err(|e| self.graph_error(pos, e))?;
        self.consts.insert(name, (value, pos));
        Ok(())
    }

    fn static_dims(&self, name: &str, ty: &TensorType, pos: usize) -> PResult<Vec<usize>> {
        ty.shape
            .dims()
            .iter()
            .map(|d| match d {
                Dim::Static(n) => Ok(*n),
                Dim::Sym(sym) => Err(self.err(
                    pos,
                    format!(
                        "const {} must have a static shape, but dim `{sym}` of {ty} is symbolic",
                        const_text(name)
                    ),
                )),
            })
            .collect()
    }

    /// `output NAME = ref`
    fn parse_output(&mut self) -> PResult<()> {
        self.bump();
        let pos = self.tok.pos;
        let name = self.name("an output name")?;
        if let Some(&first) = self.output_names.get(&name) {
            let mut shown = String::new();
            let _ = write_name(&mut shown, &name);
            return Err(self.err(
                pos,
                format!(
                    "output {shown} is declared twice; first at {}",
                    self.line_of(first)
                ),
            ));
        }
        self.expect(Tok::Equals, "after the output name")?;
        let value_pos = self.tok.pos;
        let value = match self.parse_ref()? {
            Some(value) => value,
            None => {
                return Err(self.err(
                    value_pos,
                    "an output must be a value or a constant, not `_`",
                ))
            }
        };
        self.graph
            .add_output(name.clone(), value)
            .map_err(|e| self.graph_error(pos, e))?;
        self.output_names.insert(name, pos);
        Ok(())
    }

    /// `%a: t, %b: t = op(args) {attrs} loc("label")`, or a bare `op(args) ...` for an op without
    /// results.
    fn parse_op_item(&mut self) -> PResult<()> {
        let mut results: Vec<(ValueName, usize, TensorType)> = Vec::new();
        if !matches!(self.tok.tok, Tok::Ident(_)) {
            loop {
                let pos = self.tok.pos;
                let key = match &self.tok.tok {
                    Tok::NumberedRef(digits) => ValueName::Numbered(digits.to_string()),
                    Tok::NamedRef(name) => ValueName::Named(name.to_string()),
                    _ => return Err(self.unexpected("a result name like `%3`")),
                };
                self.bump();
                if let Some(&(_, first)) = self.values.get(&key) {
                    return Err(self.err(
                        pos,
                        format!(
                            "value {key} is defined twice; first at {}",
                            self.line_of(first)
                        ),
                    ));
                }
                if results.iter().any(|(k, _, _)| *k == key) {
                    return Err(self.err(pos, format!("value {key} is defined twice on this line")));
                }
                self.expect(Tok::Colon, &format!("and a type after result {key}"))?;
                let ty = self.parse_type()?;
                results.push((key, pos, ty));
                match self.tok.tok {
                    Tok::Comma => {
                        self.bump();
                    }
                    Tok::Equals => {
                        self.bump();
                        break;
                    }
                    _ => return Err(self.unexpected("`,` and another result, or `=` and the op")),
                }
            }
        }

        let op_pos = self.tok.pos;
        let Tok::Ident(op_name) = self.tok.tok else {
            return Err(self.unexpected("an op name"));
        };
        if !Op::NAMES.contains(&op_name) {
            let mut message = format!("unknown op `{op_name}`");
            if let Some(suggestion) = suggest_op(op_name) {
                message.push_str(&format!("; did you mean `{suggestion}`?"));
            }
            return Err(self.err(op_pos, message));
        }
        self.bump();

        self.expect(
            Tok::LParen,
            &format!("to open the arguments of `{op_name}`"),
        )?;
        let mut inputs: Vec<Option<Value>> = Vec::new();
        if self.tok.tok != Tok::RParen {
            loop {
                inputs.push(self.parse_ref()?);
                match self.tok.tok {
                    Tok::Comma => {
                        self.bump();
                    }
                    Tok::RParen => break,
                    _ => {
                        return Err(self.unexpected(&format!(
                            "`,` or `)` to close the arguments of `{op_name}`"
                        )))
                    }
                }
            }
        }
        self.bump();

        let mut attrs: Vec<(String, AttrValue)> = Vec::new();
        // Offsets of each attribute's name and value, for errors from `Op::from_attrs`.
        let mut attr_positions: Vec<(usize, usize)> = Vec::new();
        if self.tok.tok == Tok::LBrace {
            self.bump();
            if self.tok.tok != Tok::RBrace {
                loop {
                    let name_pos = self.tok.pos;
                    let Tok::Ident(attr_name) = self.tok.tok else {
                        return Err(self.unexpected("an attribute name"));
                    };
                    if attrs.iter().any(|(n, _)| n == attr_name) {
                        return Err(
                            self.err(name_pos, format!("attribute `{attr_name}` is given twice"))
                        );
                    }
                    self.bump();
                    self.expect(Tok::Equals, &format!("after attribute `{attr_name}`"))?;
                    let value_pos = self.tok.pos;
                    let value = self.parse_attr_value()?;
                    attrs.push((attr_name.to_string(), value));
                    attr_positions.push((name_pos, value_pos));
                    match self.tok.tok {
                        Tok::Comma => {
                            self.bump();
                        }
                        Tok::RBrace => break,
                        _ => return Err(self.unexpected("`,` or `}` to close the attributes")),
                    }
                }
            }
            self.bump();
        }

        let attr_pos = |attr: &str, of_value: bool| {
            attrs
                .iter()
                .position(|(n, _)| n == attr)
                .map(|idx| {
                    if of_value {
                        attr_positions[idx].1
                    } else {
                        attr_positions[idx].0
                    }
                })
                .unwrap_or(op_pos)
        };
        let op = match Op::from_attrs(op_name, attrs.clone()) {
            Ok(op) => op,
            Err(err) => {
                let pos = match &err {
                    OpAttrError::UnknownAttr { attr, .. } => attr_pos(attr, false),
                    OpAttrError::WrongAttrType { attr, .. } => attr_pos(attr, true),
                    OpAttrError::MissingAttr { .. } | OpAttrError::UnknownOp(_) => op_pos,
                };
                return Err(self.err(pos, err.to_string()));
            }
        };

        let label = if self.at_keyword("loc") {
            self.bump();
            self.expect(Tok::LParen, "after `loc`")?;
            let label = self.string("a string label like `loc(\"conv1\")`")?;
            self.expect(Tok::RParen, "to close `loc(...)`")?;
            Some(label)
        } else {
            None
        };

        let types = results.iter().map(|(_, _, ty)| ty.clone()).collect();
        let node = self
            .graph
            .add_op(op, &inputs, types, label)
            .map_err(|e| self.graph_error(op_pos, e))?;
        for (port, (key, pos, _)) in results.into_iter().enumerate() {
            self.values
                .insert(key, (Value::new(node, port as u32), pos));
        }
        Ok(())
    }

    /// `%name`, `@name` or `_` (absent, `None`).
    fn parse_ref(&mut self) -> PResult<Option<Value>> {
        let pos = self.tok.pos;
        let value = match &self.tok.tok {
            Tok::Ident("_") => None,
            Tok::NumberedRef(digits) => {
                Some(self.lookup_value(ValueName::Numbered(digits.to_string()), pos)?)
            }
            Tok::NamedRef(name) => {
                Some(self.lookup_value(ValueName::Named(name.to_string()), pos)?)
            }
            Tok::ConstRef(name) => match self.consts.get(name.as_ref()) {
                Some(&(value, _)) => Some(value),
                None => {
                    return Err(self.err(
                        pos,
                        format!("const {} is used before it is defined", const_text(name)),
                    ))
                }
            },
            _ => {
                return Err(
                    self.unexpected("a value like `%0` or `%x`, a constant like `@w`, or `_`")
                )
            }
        };
        self.bump();
        Ok(value)
    }

    fn lookup_value(&self, key: ValueName, pos: usize) -> PResult<Value> {
        match self.values.get(&key) {
            Some(&(value, _)) => Ok(value),
            None => Err(self.err(pos, format!("value {key} is used before it is defined"))),
        }
    }

    // ---- types ----

    /// `dtype[dim, ...]`
    fn parse_type(&mut self) -> PResult<TensorType> {
        let pos = self.tok.pos;
        let Tok::Ident(dtype_name) = self.tok.tok else {
            return Err(self.unexpected("a type like `f32[2,3]`"));
        };
        let Some(dtype) = DType::from_name(dtype_name) else {
            let names: Vec<&str> = DType::ALL.iter().map(|d| d.name()).collect();
            return Err(self.err(
                pos,
                format!(
                    "unknown dtype `{dtype_name}`; expected one of {}",
                    names.join(", ")
                ),
            ));
        };
        self.bump();
        self.expect(
            Tok::LBracket,
            &format!("to open the shape after `{dtype_name}`"),
        )?;
        let mut dims = Vec::new();
        if self.tok.tok != Tok::RBracket {
            loop {
                let dim_pos = self.tok.pos;
                let dim = match &self.tok.tok {
                    Tok::Int(text) => match text.parse::<usize>() {
                        Ok(n) => Dim::Static(n),
                        Err(_) if text.starts_with('-') => {
                            return Err(self
                                .err(dim_pos, format!("a dim cannot be negative, found `{text}`")))
                        }
                        Err(_) => {
                            return Err(self.err(dim_pos, format!("dim `{text}` is too large")))
                        }
                    },
                    Tok::Ident(name) => Dim::sym(name),
                    Tok::Str(name) => Dim::sym(name),
                    _ => {
                        return Err(
                            self.unexpected("a dim (a size like `3` or a name like `batch`)")
                        )
                    }
                };
                self.bump();
                dims.push(dim);
                match self.tok.tok {
                    Tok::Comma => {
                        self.bump();
                    }
                    Tok::RBracket => break,
                    _ => return Err(self.unexpected("`]` to close the shape")),
                }
            }
        }
        self.bump();
        Ok(TensorType::new(dtype, Shape(dims)))
    }

    // ---- attribute values ----

    /// `INT | FLOAT | true | false | IDENT | [aval, ...]`. Lists hold one kind of scalar; a list of
    /// integers and floats is a list of floats; `[]` is an empty integer list.
    fn parse_attr_value(&mut self) -> PResult<AttrValue> {
        if self.tok.tok != Tok::LBracket {
            return self.parse_attr_scalar();
        }
        self.bump();
        let mut items: Vec<(AttrValue, usize)> = Vec::new();
        if self.tok.tok != Tok::RBracket {
            loop {
                let pos = self.tok.pos;
                if self.tok.tok == Tok::LBracket {
                    return Err(self.err(pos, "attribute lists cannot be nested"));
                }
                items.push((self.parse_attr_scalar()?, pos));
                match self.tok.tok {
                    Tok::Comma => {
                        self.bump();
                    }
                    Tok::RBracket => break,
                    _ => return Err(self.unexpected("`,` or `]` to close the list")),
                }
            }
        }
        self.bump();
        self.homogeneous_list(items)
    }

    fn homogeneous_list(&self, items: Vec<(AttrValue, usize)>) -> PResult<AttrValue> {
        let Some((first, first_pos)) = items.first().cloned() else {
            return Ok(AttrValue::Ints(Vec::new()));
        };
        if let AttrValue::Bool(_) = first {
            return Err(self.err(first_pos, "lists of booleans are not supported"));
        }
        let first_is_ident = matches!(first, AttrValue::Ident(_));
        for (item, pos) in &items {
            if matches!(item, AttrValue::Ident(_)) != first_is_ident
                || matches!(item, AttrValue::Bool(_))
            {
                return Err(self.err(
                    *pos,
                    format!(
                        "a list holds one kind of value: found {} `{item}` in a list that starts with {} `{first}`",
                        item.kind(),
                        first.kind()
                    ),
                ));
            }
        }
        let values = items.into_iter().map(|(v, _)| v);
        if first_is_ident {
            return Ok(AttrValue::Idents(
                values
                    .filter_map(|v| match v {
                        AttrValue::Ident(s) => Some(s),
                        _ => None,
                    })
                    .collect(),
            ));
        }
        let values: Vec<AttrValue> = values.collect();
        let ints: Option<Vec<i64>> = values
            .iter()
            .map(|v| match v {
                AttrValue::Int(x) => Some(*x),
                _ => None,
            })
            .collect();
        if let Some(ints) = ints {
            return Ok(AttrValue::Ints(ints));
        }
        // A `nan32(...)` item makes the list f32, so its bit pattern survives.
        if values.iter().any(|v| matches!(v, AttrValue::Float32(_))) {
            let narrow = |v: &AttrValue| match v {
                AttrValue::Int(x) => *x as f32,
                AttrValue::Float(x) => *x as f32,
                AttrValue::Float32(x) => *x,
                _ => f32::NAN,
            };
            return Ok(AttrValue::Floats32(values.iter().map(narrow).collect()));
        }
        let widen = |v: &AttrValue| match v {
            AttrValue::Int(x) => *x as f64,
            AttrValue::Float(x) => *x,
            AttrValue::Float32(x) => f64::from(*x),
            _ => f64::NAN,
        };
        Ok(AttrValue::Floats(values.iter().map(widen).collect()))
    }

    fn parse_attr_scalar(&mut self) -> PResult<AttrValue> {
        let pos = self.tok.pos;
        let value = match &self.tok.tok {
            Tok::Int(text) => match text.parse::<i64>() {
                Ok(v) => AttrValue::Int(v),
                Err(_) => {
                    return Err(self.err(pos, format!("integer `{text}` does not fit in i64")))
                }
            },
            Tok::Ident("true") => AttrValue::Bool(true),
            Tok::Ident("false") => AttrValue::Bool(false),
            Tok::Float(_) | Tok::Ident("inf" | "nan" | "nan32") => {
                return Ok(match self.parse_float_lit()? {
                    FloatLit::F64(v) => AttrValue::Float(v),
                    FloatLit::F32(v) => AttrValue::Float32(v),
                })
            }
            Tok::Ident(name) => AttrValue::Ident(name.to_string()),
            _ => {
                return Err(self.unexpected(
                    "an attribute value (a number, `true`, `false`, a name or a list)",
                ))
            }
        };
        self.bump();
        Ok(value)
    }

    /// `FLOAT`, `inf`, `-inf`, `nan`, `nan(0x<f64 bits>)` or `nan32(0x<f32 bits>)`. Integers are not
    /// accepted here; the callers that allow them handle them first.
    fn parse_float_lit(&mut self) -> PResult<FloatLit> {
        let pos = self.tok.pos;
        match self.tok.tok {
            Tok::Float(text) => {
                let value = text
                    .parse::<f64>()
                    .map_err(|_| self.err(pos, format!("invalid float `{text}`")))?;
                self.bump();
                Ok(FloatLit::F64(value))
            }
            Tok::Ident("inf") => {
                self.bump();
                Ok(FloatLit::F64(f64::INFINITY))
            }
            Tok::Ident("nan") if self.peek_second() != Tok::LParen => {
                self.bump();
                Ok(FloatLit::F64(f64::NAN))
            }
            Tok::Ident(which @ ("nan" | "nan32")) => {
                self.bump();
                self.expect(Tok::LParen, &format!("after `{which}`"))?;
                let hex_pos = self.tok.pos;
                let Tok::Hex(digits) = self.tok.tok else {
                    return Err(self.unexpected("a bit pattern like `0x7fc00001`"));
                };
                self.bump();
                self.expect(Tok::RParen, &format!("to close `{which}(...)`"))?;
                // (the literal, whether it is a NaN); `None` when the digits overflow the width.
                let (lit, width) = if which == "nan" {
                    let lit = u64::from_str_radix(digits, 16)
                        .ok()
                        .map(f64::from_bits)
                        .map(|v| (FloatLit::F64(v), v.is_nan()));
                    (lit, 16)
                } else {
                    let lit = u32::from_str_radix(digits, 16)
                        .ok()
                        .map(f32::from_bits)
                        .map(|v| (FloatLit::F32(v), v.is_nan()));
                    (lit, 8)
                };
                match lit {
                    Some((lit, true)) => Ok(lit),
                    Some((_, false)) => Err(self.err(
                        hex_pos,
                        format!("`{which}(0x{digits})` is not a NaN bit pattern"),
                    )),
                    None => Err(self.err(
                        hex_pos,
                        format!("`0x{digits}` has more than {width} hex digits for `{which}(...)`"),
                    )),
                }
            }
            _ => Err(self.unexpected("a float")),
        }
    }

    // ---- constants ----

    /// `[lit, ...]` with exactly `n_elements` literals of the dtype of `ty`.
    fn parse_elements(
        &mut self,
        name: &str,
        ty: &TensorType,
        n_elements: usize,
    ) -> PResult<TensorData> {
        let open_pos = self.bump().pos;
        // Every literal takes at least two bytes of text, which bounds the allocation by the input
        // size even when the declared shape is huge.
        let capacity = n_elements.min(self.src.len() / 2 + 1);
        let data = match ty.dtype {
            DType::F32 => TensorData::F32(self.elements(capacity, |p| p.f32_elem())?.into()),
            DType::F64 => TensorData::F64(self.elements(capacity, |p| p.f64_elem())?.into()),
            DType::I64 => {
                TensorData::I64(self.elements(capacity, |p| p.int_elem(DType::I64))?.into())
            }
            DType::I32 => {
                TensorData::I32(self.elements(capacity, |p| p.int_elem(DType::I32))?.into())
            }
            DType::I8 => TensorData::I8(self.elements(capacity, |p| p.int_elem(DType::I8))?.into()),
            DType::U8 => TensorData::U8(self.elements(capacity, |p| p.int_elem(DType::U8))?.into()),
            DType::Bool => TensorData::Bool(self.elements(capacity, |p| p.bool_elem())?.into()),
        };
        if data.len() != n_elements {
            let noun = if data.len() == 1 {
                "element"
            } else {
                "elements"
            };
            return Err(self.err(
                open_pos,
                format!(
                    "const {} has {} {noun} but {ty} needs {n_elements}",
                    const_text(name),
                    data.len()
                ),
            ));
        }
        Ok(data)
    }

    /// Literals up to the closing `]`, which it consumes.
    fn elements<T>(
        &mut self,
        capacity: usize,
        mut one: impl FnMut(&mut Self) -> PResult<T>,
    ) -> PResult<Vec<T>> {
        let mut out = Vec::with_capacity(capacity);
        if self.tok.tok == Tok::RBracket {
            self.bump();
            return Ok(out);
        }
        loop {
            out.push(one(self)?);
            match self.tok.tok {
                Tok::Comma => {
                    self.bump();
                }
                Tok::RBracket => {
                    self.bump();
                    return Ok(out);
                }
                _ => return Err(self.unexpected("`,` or `]` to close the elements")),
            }
        }
    }

    fn f32_elem(&mut self) -> PResult<f32> {
        let pos = self.tok.pos;
        match self.tok.tok {
            // Parsed directly as f32: correctly rounded, so every `write_f32` form comes back exact.
            Tok::Int(text) | Tok::Float(text) => {
                let value = text
                    .parse::<f32>()
                    .map_err(|_| self.err(pos, format!("invalid float `{text}`")))?;
                self.bump();
                Ok(value)
            }
            Tok::Ident("inf" | "nan" | "nan32") => match self.parse_float_lit()? {
                FloatLit::F32(v) => Ok(v),
                FloatLit::F64(v) => Ok(v as f32),
            },
            _ => Err(self.elem_error(pos, "a float")),
        }
    }

    fn f64_elem(&mut self) -> PResult<f64> {
        let pos = self.tok.pos;
        match self.tok.tok {
            Tok::Int(text) | Tok::Float(text) => {
                let value = text
                    .parse::<f64>()
                    .map_err(|_| self.err(pos, format!("invalid float `{text}`")))?;
                self.bump();
                Ok(value)
            }
            Tok::Ident("inf" | "nan" | "nan32") => match self.parse_float_lit()? {
                FloatLit::F32(v) => Ok(f64::from(v)),
                FloatLit::F64(v) => Ok(v),
            },
            _ => Err(self.elem_error(pos, "a float")),
        }
    }

    fn int_elem<T: TryFrom<i128>>(&mut self, dtype: DType) -> PResult<T> {
        let pos = self.tok.pos;
        let Tok::Int(text) = self.tok.tok else {
            return Err(self.elem_error(pos, &format!("an integer for {dtype}")));
        };
        let value = text
            .parse::<i128>()
            .ok()
            .and_then(|v| T::try_from(v).ok())
            .ok_or_else(|| {
                self.err(
                    pos,
                    format!(
                        "integer `{text}` is out of range for {dtype}{}",
                        int_range(dtype)
                    ),
                )
            })?;
        self.bump();
        Ok(value)
    }

    fn bool_elem(&mut self) -> PResult<bool> {
        let pos = self.tok.pos;
        let value = match self.tok.tok {
            Tok::Ident("true") => true,
            Tok::Ident("false") => false,
            _ => return Err(self.elem_error(pos, "`true` or `false`")),
        };
        self.bump();
        Ok(value)
    }

    /// A literal of the wrong kind in a constant.
    fn elem_error(&self, pos: usize, expected: &str) -> PErr {
        match &self.tok.tok {
            Tok::Invalid(message) => self.err(pos, message.clone()),
            Tok::Float(text) => self.err(pos, format!("expected {expected}, found float `{text}`")),
            found => self.err(pos, format!("expected {expected} or `]`, found {found}")),
        }
    }

    /// `external("file", offset=N)`: `n_elements` little-endian elements at byte `N` of `file`.
    fn parse_external(
        &mut self,
        name: &str,
        ty: &TensorType,
        n_elements: usize,
    ) -> PResult<TensorData> {
        self.bump();
        self.expect(Tok::LParen, "after `external`")?;
        let file_pos = self.tok.pos;
        let file = self.string("the weights file name as a string")?;
        self.expect(Tok::Comma, "after the weights file name")?;
        self.expect_keyword("offset", "after the weights file name")?;
        self.expect(Tok::Equals, "after `offset`")?;
        let offset_pos = self.tok.pos;
        let Tok::Int(offset_text) = self.tok.tok else {
            return Err(self.unexpected("a byte offset"));
        };
        let offset = offset_text.parse::<usize>().map_err(|_| {
            self.err(
                offset_pos,
                format!("offset `{offset_text}` must be a non-negative byte offset"),
            )
        })?;
        self.bump();
        self.expect(Tok::RParen, "to close `external(...)`")?;

        let Some(base_dir) = &self.options.base_dir else {
            return Err(self.err(
                file_pos,
                format!(
                    "const {} refers to external weights, but no base folder is set \
                     (parse with `parse_file` or set `ParseOptions::base_dir`)",
                    const_text(name)
                ),
            ));
        };
        let Some(relative) = confined_relative_path(&file) else {
            return Err(self.err(
                file_pos,
                format!(
                    "external weights file `{file}` must be a relative path inside the .sir file's folder \
                     (no `..`, no absolute path)"
                ),
            ));
        };
        if !self.files.contains_key(&file) {
            let path = base_dir.join(relative);
            let bytes = std::fs::read(&path).map_err(|err| {
                self.err(
                    file_pos,
                    format!("cannot read external weights `{}`: {err}", path.display()),
                )
            })?;
            self.files.insert(file.clone(), bytes);
        }
        let bytes = &self.files[&file];
        let n_bytes = n_elements.checked_mul(ty.dtype.size_bytes());
        let range = n_bytes.and_then(|n| Some(offset..offset.checked_add(n)?));
        let Some(slice) = range.clone().and_then(|r| bytes.get(r)) else {
            let needed = match range {
                Some(r) => format!("bytes {}..{}", r.start, r.end),
                None => "more bytes than fit in memory".to_string(),
            };
            return Err(self.err(
                offset_pos,
                format!(
                    "const {} ({ty}) needs {needed} of `{file}`, but the file has {} bytes",
                    const_text(name),
                    bytes.len()
                ),
            ));
        };
        TensorData::from_le_bytes(ty.dtype, slice).ok_or_else(|| {
            self.err(
                offset_pos,
                "the byte count is not a whole number of elements",
            )
        })
    }

    /// `line N` for "first at ..." notes.
    fn line_of(&self, pos: usize) -> String {
        format!("line {}", ParseError::at(self.src, pos, String::new()).line)
    }
}

/// ` (-128..=127)`: the range of an integer dtype, for messages.
fn int_range(dtype: DType) -> &'static str {
    match dtype {
        DType::I8 => " (-128..=127)",
        DType::U8 => " (0..=255)",
        DType::I32 => " (-2147483648..=2147483647)",
        _ => "",
    }
}

/// The op name closest to `name`, if it is close enough to be a likely typo.
fn suggest_op(name: &str) -> Option<&'static str> {
    let normalize = |s: &str| s.to_ascii_lowercase().replace('_', "");
    let normalized = normalize(name);
    if let Some(exact) = Op::NAMES.iter().find(|n| normalize(n) == normalized) {
        return Some(exact);
    }
    let lower = name.to_ascii_lowercase();
    let threshold = (name.chars().count() / 3).max(1);
    Op::NAMES
        .iter()
        .map(|candidate| (edit_distance(&lower, candidate), *candidate))
        .filter(|(distance, _)| *distance <= threshold)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(suggest_op("conv2d"), Some("conv"));
        assert_eq!(suggest_op("MaxPool"), Some("max_pool"));
        assert_eq!(suggest_op("relu6"), Some("relu"));
        assert_eq!(suggest_op("frobnicate"), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn value_names_display_as_written() {
        assert_eq!(ValueName::Numbered("7".into()).to_string(), "%7");
        assert_eq!(ValueName::Named("0".into()).to_string(), "%\"0\"");
        assert_eq!(ValueName::Named("a b".into()).to_string(), "%\"a b\"");
    }
}
