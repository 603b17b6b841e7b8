//! Tokens of the `.sir` format.
//!
//! The lexer is a cursor over the source that produces one token at a time, so a file with megabytes
//! of inline weights is never held twice. Tokens borrow from the source; only strings with escapes
//! allocate. Positions are byte offsets; the parser turns one into a line and column only when it
//! reports an error.
//!
//! A malformed token (an unterminated string, `3abc`) is returned as [`Tok::Invalid`] rather than as an
//! error, so that the parser reports problems in source order: a syntax error before a bad token wins.

use std::borrow::Cow;
use std::fmt;

/// One token. Punctuation is one variant per character.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok<'a> {
    /// `[A-Za-z_][A-Za-z0-9_.]*`: keywords, op names, dtypes, dims, attribute names and values.
    Ident(&'a str),
    /// `-?[0-9]+`, the text as written.
    Int(&'a str),
    /// A decimal with a `.` or an exponent, or `-inf`, the text as written.
    Float(&'a str),
    /// `0x` followed by hex digits; the digits only. Appears inside `nan(...)` and `nan32(...)`.
    Hex(&'a str),
    /// A quoted string with its escapes resolved.
    Str(Cow<'a, str>),
    /// `%` followed by digits: an op result numbered by the printer.
    NumberedRef(&'a str),
    /// `%name` or `%"name"`.
    NamedRef(Cow<'a, str>),
    /// `@name` or `@"name"`.
    ConstRef(Cow<'a, str>),
    LBrace,
    RBrace,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Colon,
    Equals,
    Eof,
    /// A malformed token; the message says what is wrong.
    Invalid(String),
}

impl fmt::Display for Tok<'_> {
    /// How an error message names the token it found.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Ident(s) | Tok::Int(s) | Tok::Float(s) => write!(f, "`{s}`"),
            Tok::Hex(s) => write!(f, "`0x{s}`"),
            Tok::Str(s) => {
                f.write_str("string ")?;
                super::write_quoted(f, s)
            }
            Tok::NumberedRef(s) => write!(f, "`%{s}`"),
            Tok::NamedRef(s) => {
                f.write_str("`%")?;
                super::write_name(f, s)?;
                f.write_str("`")
            }
            Tok::ConstRef(s) => {
                f.write_str("`@")?;
                super::write_name(f, s)?;
                f.write_str("`")
            }
            Tok::LBrace => f.write_str("`{`"),
            Tok::RBrace => f.write_str("`}`"),
            Tok::LParen => f.write_str("`(`"),
            Tok::RParen => f.write_str("`)`"),
            Tok::LBracket => f.write_str("`[`"),
            Tok::RBracket => f.write_str("`]`"),
            Tok::Comma => f.write_str("`,`"),
            Tok::Colon => f.write_str("`:`"),
            Tok::Equals => f.write_str("`=`"),
            Tok::Eof => f.write_str("end of file"),
            Tok::Invalid(message) => f.write_str(message),
        }
    }
}

/// A token and the byte offset where it starts.
#[derive(Clone, Debug)]
pub(super) struct Token<'a> {
    pub tok: Tok<'a>,
    pub pos: usize,
}

/// A cursor over the source text.
#[derive(Clone)]
pub(super) struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

pub(super) fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

pub(super) fn is_ident_continue(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.'
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str) -> Lexer<'a> {
        // A byte-order mark is not part of the text.
        let pos = if src.starts_with('\u{feff}') { 3 } else { 0 };
        Lexer { src, pos }
    }

    fn byte(&self, pos: usize) -> Option<u8> {
        self.src.as_bytes().get(pos).copied()
    }

    fn skip_trivia(&mut self) {
        let bytes = self.src.as_bytes();
        while let Some(&b) = bytes.get(self.pos) {
            match b {
                b' ' | b'\t' | b'\n' | b'\r' => self.pos += 1,
                b';' => {
                    self.pos = match memchr_newline(&bytes[self.pos..]) {
                        Some(len) => self.pos + len,
                        None => bytes.len(),
                    }
                }
                _ => break,
            }
        }
    }

    /// Consumes `[A-Za-z0-9_.]*` from `start` and returns the end.
    fn ident_end(&self, start: usize) -> usize {
        let bytes = self.src.as_bytes();
        let mut end = start;
        while bytes.get(end).is_some_and(|&b| is_ident_continue(b)) {
            end += 1;
        }
        end
    }

    fn digits_end(&self, start: usize) -> usize {
        let bytes = self.src.as_bytes();
        let mut end = start;
        while bytes.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
        end
    }

    pub fn next_token(&mut self) -> Token<'a> {
        self.skip_trivia();
        let start = self.pos;
        let tok = self.lex_at(start);
        Token { tok, pos: start }
    }

    fn punct(&mut self, tok: Tok<'a>) -> Tok<'a> {
        self.pos += 1;
        tok
    }

    fn lex_at(&mut self, start: usize) -> Tok<'a> {
        let Some(b) = self.byte(start) else {
            return Tok::Eof;
        };
        match b {
            b'{' => self.punct(Tok::LBrace),
            b'}' => self.punct(Tok::RBrace),
            b'(' => self.punct(Tok::LParen),
            b')' => self.punct(Tok::RParen),
            b'[' => self.punct(Tok::LBracket),
            b']' => self.punct(Tok::RBracket),
            b',' => self.punct(Tok::Comma),
            b':' => self.punct(Tok::Colon),
            b'=' => self.punct(Tok::Equals),
            b'"' => match self.string(start) {
                Ok(s) => Tok::Str(s),
                Err(message) => Tok::Invalid(message),
            },
            b'%' => self.value_ref(start),
            b'@' => match self.name_after_sigil(start + 1) {
                Ok(name) => Tok::ConstRef(name),
                Err(()) => {
                    self.invalid_sigil(start, "@", "a constant name like `@w1` or `@\"w:0\"`")
                }
            },
            b'-' | b'0'..=b'9' => self.number(start),
            _ if is_ident_start(b) => {
                let end = self.ident_end(start + 1);
                self.pos = end;
                Tok::Ident(&self.src[start..end])
            }
            _ => {
                let ch = self.src[start..].chars().next().unwrap_or('?');
                self.pos = start + ch.len_utf8();
                Tok::Invalid(format!("unexpected character `{}`", ch.escape_debug()))
            }
        }
    }

    fn invalid_sigil(&mut self, start: usize, sigil: &str, expected: &str) -> Tok<'a> {
        self.pos = start + 1;
        Tok::Invalid(format!("`{sigil}` must be followed by {expected}"))
    }

    /// `%` followed by digits, an identifier or a string.
    fn value_ref(&mut self, start: usize) -> Tok<'a> {
        let name_start = start + 1;
        if self.byte(name_start).is_some_and(|b| b.is_ascii_digit()) {
            let end = self.digits_end(name_start);
            if self.byte(end).is_some_and(is_ident_continue) {
                let bad_end = self.ident_end(end);
                self.pos = bad_end;
                return Tok::Invalid(format!(
                    "invalid value name `{}`: a name starting with a digit must be all digits (quote it: `%\"{}\"`)",
                    &self.src[start..bad_end],
                    &self.src[name_start..bad_end]
                ));
            }
            self.pos = end;
            return Tok::NumberedRef(&self.src[name_start..end]);
        }
        match self.name_after_sigil(name_start) {
            Ok(name) => Tok::NamedRef(name),
            Err(()) => self.invalid_sigil(start, "%", "a value name like `%0`, `%x` or `%\"x:0\"`"),
        }
    }

    /// An identifier or a string starting at `start`.
    fn name_after_sigil(&mut self, start: usize) -> Result<Cow<'a, str>, ()> {
        match self.byte(start) {
            Some(b'"') => self.string(start).map_err(|_| ()),
            Some(b) if is_ident_start(b) => {
                let end = self.ident_end(start + 1);
                self.pos = end;
                Ok(Cow::Borrowed(&self.src[start..end]))
            }
            _ => Err(()),
        }
    }

    /// `INT`, `FLOAT`, `-inf` or `0x...`, starting at `start` with a digit or `-`.
    fn number(&mut self, start: usize) -> Tok<'a> {
        let bytes = self.src.as_bytes();
        if bytes[start..].starts_with(b"0x") || bytes[start..].starts_with(b"0X") {
            let digits_start = start + 2;
            let mut end = digits_start;
            while bytes.get(end).is_some_and(u8::is_ascii_hexdigit) {
                end += 1;
            }
            let bad_tail = bytes.get(end).is_some_and(|&b| is_ident_continue(b));
            if end == digits_start || bad_tail {
                let bad_end = self.ident_end(end);
                self.pos = bad_end;
                return Tok::Invalid(format!(
                    "invalid hex number `{}`",
                    &self.src[start..bad_end]
                ));
            }
            self.pos = end;
            return Tok::Hex(&self.src[digits_start..end]);
        }
        let mut end = start;
        if bytes[start] == b'-' {
            end += 1;
            if bytes[end..].starts_with(b"inf")
                && !bytes.get(end + 3).is_some_and(|&b| is_ident_continue(b))
            {
                self.pos = end + 3;
                return Tok::Float(&self.src[start..end + 3]);
            }
            if !bytes.get(end).is_some_and(u8::is_ascii_digit) {
                self.pos = end;
                return Tok::Invalid("`-` must be followed by a number or `inf`".to_string());
            }
        }
        end = self.digits_end(end);
        let mut is_float = false;
        if bytes.get(end) == Some(&b'.') {
            let frac_end = self.digits_end(end + 1);
            if frac_end == end + 1 {
                self.pos = end + 1;
                return Tok::Invalid(format!(
                    "expected digits after the `.` in `{}`",
                    &self.src[start..end + 1]
                ));
            }
            end = frac_end;
            is_float = true;
        }
        if matches!(bytes.get(end), Some(b'e' | b'E')) {
            let mut exp_start = end + 1;
            if matches!(bytes.get(exp_start), Some(b'+' | b'-')) {
                exp_start += 1;
            }
            let exp_end = self.digits_end(exp_start);
            if exp_end == exp_start {
                self.pos = exp_start;
                return Tok::Invalid(format!(
                    "expected exponent digits in `{}`",
                    &self.src[start..exp_start]
                ));
            }
            end = exp_end;
            is_float = true;
        }
        if bytes.get(end).is_some_and(|&b| is_ident_continue(b)) {
            let bad_end = self.ident_end(end);
            self.pos = bad_end;
            return Tok::Invalid(format!("invalid number `{}`", &self.src[start..bad_end]));
        }
        self.pos = end;
        let text = &self.src[start..end];
        if is_float {
            Tok::Float(text)
        } else {
            Tok::Int(text)
        }
    }

    /// A string starting at the `"` at `start`. Strings do not span lines; a missing closing quote
    /// is reported on the line it starts.
    fn string(&mut self, start: usize) -> Result<Cow<'a, str>, String> {
        let bytes = self.src.as_bytes();
        let body_start = start + 1;
        let mut idx = body_start;
        // Fast path: no escapes, borrow the text.
        while let Some(&b) = bytes.get(idx) {
            match b {
                b'"' => {
                    self.pos = idx + 1;
                    return Ok(Cow::Borrowed(&self.src[body_start..idx]));
                }
                b'\\' => break,
                b'\n' => {
                    self.pos = idx;
                    return Err(
                        "unterminated string: missing the closing `\"` on this line".to_string()
                    );
                }
                _ => idx += 1,
            }
        }
        let mut out = String::from(&self.src[body_start..idx]);
        let mut chars = self.src[idx..].char_indices();
        while let Some((offset, ch)) = chars.next() {
            match ch {
                '"' => {
                    self.pos = idx + offset + 1;
                    return Ok(Cow::Owned(out));
                }
                '\n' => break,
                '\\' => {
                    let escape = chars.next().map(|(_, c)| c);
                    match escape {
                        Some('"') => out.push('"'),
                        Some('\\') => out.push('\\'),
                        Some('n') => out.push('\n'),
                        Some('t') => out.push('\t'),
                        Some('r') => out.push('\r'),
                        Some('u') => {
                            let rest = &self.src[idx + offset + 2..];
                            let code = rest
                                .strip_prefix('{')
                                .and_then(|r| r.split_once('}'))
                                .and_then(|(hex, _)| u32::from_str_radix(hex, 16).ok())
                                .and_then(char::from_u32);
                            let Some(code) = code else {
                                self.pos = idx + offset;
                                return Err("invalid `\\u{...}` escape in string".to_string());
                            };
                            out.push(code);
                            // Skip `{hex}`.
                            let skip = rest.find('}').unwrap_or(0) + 1;
                            for _ in 0..skip {
                                chars.next();
                            }
                        }
                        other => {
                            self.pos = idx + offset;
                            let shown = other
                                .map(|c| c.escape_debug().to_string())
                                .unwrap_or_default();
                            return Err(format!(
                                "unknown escape `\\{shown}` in string (use \\\" \\\\ \\n \\t \\r or \\u{{...}})"
                            ));
                        }
                    }
                }
                _ => out.push(ch),
            }
        }
        self.pos = self.src.len();
        Err("unterminated string: missing the closing `\"` on this line".to_string())
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex_all(src: &str) -> Vec<Tok<'_>> {
        let mut lexer = Lexer::new(src);
        let mut out = Vec::new();
        loop {
            let token = lexer.next_token();
            if token.tok == Tok::Eof {
                return out;
            }
            out.push(token.tok);
        }
    }

    #[test]
    fn numbers_refs_and_strings() {
        let toks =
            lex_all("%0 %x %\"a\\\"b\" @w 1 -2 1.5 1e-7 -inf nan(0x7ff4) ; comment\n\"q\\u{41}\"");
        assert_eq!(
            toks,
            vec![
                Tok::NumberedRef("0"),
                Tok::NamedRef(Cow::Borrowed("x")),
                Tok::NamedRef(Cow::Owned("a\"b".to_string())),
                Tok::ConstRef(Cow::Borrowed("w")),
                Tok::Int("1"),
                Tok::Int("-2"),
                Tok::Float("1.5"),
                Tok::Float("1e-7"),
                Tok::Float("-inf"),
                Tok::Ident("nan"),
                Tok::LParen,
                Tok::Hex("7ff4"),
                Tok::RParen,
                Tok::Str(Cow::Owned("qA".to_string())),
            ]
        );
    }

    #[test]
    fn malformed_tokens_are_invalid() {
        for src in ["3abc", "1.", "1e", "%1x", "\"open", "-x", "$", "0x", "@1"] {
            let toks = lex_all(src);
            assert!(
                matches!(toks.first(), Some(Tok::Invalid(_))),
                "{src}: {toks:?}"
            );
        }
    }
}
