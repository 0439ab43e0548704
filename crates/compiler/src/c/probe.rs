//! What the files of a compile ask with `__has_include`: the one preprocessor question whose
//! answer depends on files no dependency list names. A light lexer finds every use of the
//! operator (and of the macros defined as nothing but it, `#define HAS __has_include`); uses
//! that ask nothing (`defined(__has_include)`, `#ifdef __has_include`) are dropped, calls
//! with a literal header name (`__has_include(<x.h>)`, `("x.h")`) become [`Question`]s a
//! manifest candidate can answer again with a few `stat`s, and anything else (a macro as the
//! argument, a wrapper macro, a use the lexer cannot place) makes the files unreadable, so
//! the compile keeps being keyed by the preprocessor's output. Any doubt means unreadable.

use crate::text::contains;

/// The spellings of the operator: C23's and C++17's, the `_next` form, and the internal
/// names gcc 5 to 9 defined them as.
const OPERATORS: [&[u8]; 4] = [
    b"__has_include",
    b"__has_include_next",
    b"__has_include__",
    b"__has_include_next__",
];

/// Alias rounds before giving up (`#define A B`, `#define B __has_include`, ...).
const MAX_ROUNDS: usize = 8;

/// One question a file asks: does a header of this name exist?
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Question {
    /// The header name, between its quotes or angle brackets.
    pub name: Vec<u8>,
    /// `"name"` (searched from the asking file's directory first) rather than `<name>`.
    pub quoted: bool,
}

/// The questions `files` ask, each with the index of the file that asks it, sorted and
/// without repeats; `None` when a use of the operator cannot be read.
pub(crate) fn questions(files: &[&[u8]]) -> Option<Vec<(usize, Question)>> {
    if files.iter().any(|f| contains(f, b"__has_embed")) {
        // C23's `__has_embed` asks about files too, with parameters this scanner does not
        // read.
        return None;
    }
    let mut operators: Vec<Vec<u8>> = OPERATORS.iter().map(|o| o.to_vec()).collect();
    for _ in 0..MAX_ROUNDS {
        let mut found = Vec::new();
        let mut aliases = Vec::new();
        for (at, file) in files.iter().enumerate() {
            if !operators.iter().any(|o| contains(file, o)) {
                continue;
            }
            let scan = scan(file, &operators)?;
            found.extend(scan.questions.into_iter().map(|q| (at, q)));
            aliases.extend(scan.aliases);
        }
        aliases.retain(|a| !operators.contains(a));
        if aliases.is_empty() {
            found.sort();
            found.dedup();
            return Some(found);
        }
        aliases.sort();
        aliases.dedup();
        operators.extend(aliases);
    }
    None
}

/// What one file says about the operators it was scanned for.
#[derive(Debug, Default, PartialEq, Eq)]
struct Scan {
    questions: Vec<Question>,
    /// Object-like macros whose whole replacement is one of the operators.
    aliases: Vec<Vec<u8>>,
}

/// Scans one file for uses of `operators`; `None` when one cannot be read.
fn scan(bytes: &[u8], operators: &[Vec<u8>]) -> Option<Scan> {
    if contains(bytes, b"??/") {
        // A trigraph backslash splices lines under `-std=c99` and the like.
        return None;
    }
    let text = splice(bytes);
    let mut lexer = Lexer::new(&text, operators);
    let mut scan = Scan::default();
    let mut line = Line::Code;
    // The two tokens before the current one, nearest first.
    let mut before: [Option<Token>; 2] = [None, None];
    while let Some(token) = lexer.next().ok()? {
        let mut position = None;
        if token.line_start {
            line = if token.kind == Kind::Punct(b'#') {
                Line::Hash
            } else {
                Line::Code
            };
        } else if let Line::Directive { seen, .. } = &mut line {
            position = Some(*seen);
            *seen += 1;
        } else if matches!(line, Line::Hash) {
            line = Line::Directive {
                name: token.start..token.end,
                seen: 0,
            };
        }
        if token.kind == Kind::Ident && operators.iter().any(|o| o == token.text(&text)) {
            let directive = match &line {
                Line::Directive { name, .. } => Some(&text[name.clone()]),
                _ => None,
            };
            let use_ = Use {
                text: &text,
                token,
                directive,
                position,
                before: &before,
            };
            match use_.read(&lexer)? {
                Read::Harmless => {}
                Read::Alias(name) => scan.aliases.push(name),
                Read::Question(question, after) => {
                    scan.questions.push(question);
                    lexer.pos = after;
                }
            }
        }
        before = [Some(token), before[0]];
    }
    Some(scan)
}

/// Where the lexer is in a logical line.
enum Line {
    /// Not a directive (or not yet known).
    Code,
    /// Just after a `#` that opens a line.
    Hash,
    /// In a directive named by the `name` range; `seen` tokens after the name so far.
    Directive {
        name: std::ops::Range<usize>,
        seen: usize,
    },
}

/// One use of an operator and what surrounds it.
struct Use<'t> {
    text: &'t [u8],
    token: Token,
    /// The directive the use is in, by name.
    directive: Option<&'t [u8]>,
    /// Its place among the directive's tokens after the name.
    position: Option<usize>,
    before: &'t [Option<Token>; 2],
}

/// What a use of an operator means.
enum Read {
    /// It asks nothing (`defined`, `#ifdef`, the name a `#define` defines).
    Harmless,
    /// `#define NAME operator`: NAME asks too.
    Alias(Vec<u8>),
    /// A question, and where the lexer goes on after the call.
    Question(Question, usize),
}

impl Use<'_> {
    /// What this use means, or `None` when it cannot be read.
    fn read(&self, lexer: &Lexer<'_>) -> Option<Read> {
        let text = self.text;
        match (self.directive, self.position) {
            (Some(b"ifdef" | b"ifndef" | b"undef" | b"define"), Some(0)) => {
                return Some(Read::Harmless);
            }
            (Some(b"define"), Some(1)) => {
                let mut ahead = lexer.clone();
                if ahead.next().ok()?.is_none_or(|next| next.line_start) {
                    let name = self.before[0].filter(|t| t.kind == Kind::Ident)?;
                    return Some(Read::Alias(name.text(text).to_vec()));
                }
            }
            _ => {}
        }
        let defined = |token: Option<Token>| {
            token.is_some_and(|t| t.kind == Kind::Ident && t.text(text) == b"defined")
        };
        let open = self.before[0].is_some_and(|t| t.kind == Kind::Punct(b'('));
        if defined(self.before[0]) || (open && defined(self.before[1])) {
            return Some(Read::Harmless);
        }
        let (question, after) = call(text, self.token.end)?;
        if question.quoted && self.directive == Some(b"define") {
            // Which file's directory a quoted name is searched from first depends on where
            // the macro is expanded.
            return None;
        }
        Some(Read::Question(question, after))
    }
}

/// The call `( "name" )` or `( <name> )` starting at `at`, on one line, and where it ends.
fn call(text: &[u8], at: usize) -> Option<(Question, usize)> {
    let blank = |mut i: usize| {
        while matches!(text.get(i), Some(b' ' | b'\t' | b'\r' | 0x0b | 0x0c)) {
            i += 1;
        }
        i
    };
    let mut i = blank(at);
    if text.get(i) != Some(&b'(') {
        return None;
    }
    i = blank(i + 1);
    let (close, quoted) = match text.get(i)? {
        b'"' => (b'"', true),
        b'<' => (b'>', false),
        _ => return None,
    };
    let start = i + 1;
    let len = text[start..].iter().position(|&b| b == close)?;
    let name = &text[start..start + len];
    // A plain name only: through a macro, gcc rebuilds `<...>` from tokens, spaces and all.
    let plain = |b: &u8| b.is_ascii_alphanumeric() || b"_.+-/".contains(b);
    if name.is_empty() || !name.iter().all(plain) || contains(name, b"//") || contains(name, b"/*")
    {
        return None;
    }
    i = blank(start + len + 1);
    if text.get(i) != Some(&b')') {
        return None;
    }
    let question = Question {
        name: name.to_vec(),
        quoted,
    };
    Some((question, i + 1))
}

/// The text with every backslash-newline removed (gcc also splices when blanks stand
/// between the two).
fn splice(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            let mut j = i + 1;
            while matches!(bytes.get(j), Some(b' ' | b'\t' | b'\r')) {
                j += 1;
            }
            if bytes.get(j) == Some(&b'\n') {
                i = j + 1;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// What a token is, as far as the scanner cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ident,
    /// A one-byte punctuator (`%:` reads as `#`).
    Punct(u8),
    /// A number, a literal, a header name.
    Other,
}

/// One preprocessing token.
#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
    /// The first token of its line.
    line_start: bool,
}

impl Token {
    fn text(self, text: &[u8]) -> &[u8] {
        &text[self.start..self.end]
    }
}

/// A place where the lexer cannot tell what follows: an unterminated comment or raw
/// string, or an unterminated literal on a line that names an operator.
#[derive(Debug)]
struct Doubt;

/// Preprocessing tokens of spliced text: comments skipped, literals and header names as
/// single tokens.
#[derive(Clone)]
struct Lexer<'t> {
    text: &'t [u8],
    operators: &'t [Vec<u8>],
    pos: usize,
    line_start: bool,
    /// Tokens since the line's `#`: 1 after the `#`, 2 after an `include`-like name.
    directive: u8,
}

fn ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

impl<'t> Lexer<'t> {
    fn new(text: &'t [u8], operators: &'t [Vec<u8>]) -> Self {
        Self {
            text,
            operators,
            pos: 0,
            line_start: true,
            directive: 0,
        }
    }

    /// The next token; `Ok(None)` at the end.
    fn next(&mut self) -> Result<Option<Token>, Doubt> {
        self.skip_blanks()?;
        let text = self.text;
        let Some(&b) = text.get(self.pos) else {
            return Ok(None);
        };
        let start = self.pos;
        let at = |i: usize| text.get(i).copied().unwrap_or(0);
        let (kind, end) = if ident_byte(b) && !b.is_ascii_digit() {
            let end = start + text[start..].iter().take_while(|&&c| ident_byte(c)).count();
            self.after_ident(start, end)?
        } else if b.is_ascii_digit() || (b == b'.' && at(start + 1).is_ascii_digit()) {
            (Kind::Other, self.number_end(start))
        } else if b == b'"' || b == b'\'' {
            (Kind::Other, self.literal_end(start)?)
        } else if b == b'<' && self.directive == 2 {
            match text[start..].iter().position(|&c| c == b'>' || c == b'\n') {
                Some(n) if text[start + n] == b'>' => (Kind::Other, start + n + 1),
                _ => (Kind::Punct(b'<'), start + 1),
            }
        } else if b == b'%' && at(start + 1) == b':' {
            (Kind::Punct(b'#'), start + 2)
        } else {
            (Kind::Punct(b), start + 1)
        };
        let token = Token {
            kind,
            start,
            end,
            line_start: std::mem::take(&mut self.line_start),
        };
        self.directive = match (token.line_start, self.directive, kind) {
            (true, _, Kind::Punct(b'#')) => 1,
            (false, 1, Kind::Ident)
                if matches!(&text[start..end], b"include" | b"include_next" | b"import") =>
            {
                2
            }
            _ => 0,
        };
        self.pos = end;
        Ok(Some(token))
    }

    /// Skips blanks and comments, noting new lines (a newline inside a block comment does
    /// not start one, as in gcc).
    fn skip_blanks(&mut self) -> Result<(), Doubt> {
        let text = self.text;
        while let Some(&b) = text.get(self.pos) {
            match (b, text.get(self.pos + 1)) {
                (b'\n', _) => {
                    self.line_start = true;
                    self.directive = 0;
                    self.pos += 1;
                }
                (b' ' | b'\t' | b'\r' | 0x0b | 0x0c, _) => self.pos += 1,
                (b'/', Some(b'/')) => {
                    self.pos += text[self.pos..]
                        .iter()
                        .position(|&c| c == b'\n')
                        .unwrap_or(text.len() - self.pos);
                }
                (b'/', Some(b'*')) => {
                    let close = memchr::memmem::find(&text[self.pos + 2..], b"*/").ok_or(Doubt)?;
                    self.pos += 2 + close + 2;
                }
                _ => break,
            }
        }
        Ok(())
    }

    /// An identifier at `start..end`, or the prefix of a literal that follows it.
    fn after_ident(&self, start: usize, end: usize) -> Result<(Kind, usize), Doubt> {
        let prefix = &self.text[start..end];
        match self.text.get(end) {
            Some(b'"') if matches!(prefix, b"R" | b"LR" | b"uR" | b"UR" | b"u8R") => {
                if let Some(raw_end) = self.raw_end(end)? {
                    return Ok((Kind::Other, raw_end));
                }
            }
            Some(b'"' | b'\'') if matches!(prefix, b"L" | b"u" | b"U" | b"u8") => {
                return Ok((Kind::Other, self.literal_end(end)?));
            }
            _ => {}
        }
        Ok((Kind::Ident, end))
    }

    /// The end of a C++ raw string whose `"` is at `quote`; `None` when what follows is no
    /// raw string's opening.
    fn raw_end(&self, quote: usize) -> Result<Option<usize>, Doubt> {
        let rest = &self.text[quote + 1..];
        let Some(open) = rest.iter().take(17).position(|&c| c == b'(') else {
            return Ok(None);
        };
        let delimiter = &rest[..open];
        if delimiter
            .iter()
            .any(|c| b" ()\\\t\x0b\x0c\r\n\"".contains(c))
        {
            return Ok(None);
        }
        let mut close = vec![b')'];
        close.extend_from_slice(delimiter);
        close.push(b'"');
        let body = quote + 1 + open + 1;
        let at = memchr::memmem::find(&self.text[body..], &close).ok_or(Doubt)?;
        Ok(Some(body + at + close.len()))
    }

    /// The end of a string or character literal opening at `start`. Unterminated, it runs
    /// to the end of its line (as gcc lexes it), unless that rest names an operator, which
    /// gcc might still see.
    fn literal_end(&self, start: usize) -> Result<usize, Doubt> {
        let text = self.text;
        let quote = text[start];
        let mut i = start + 1;
        while let Some(&c) = text.get(i) {
            match c {
                b'\\' => i += 2,
                b'\n' => break,
                _ if c == quote => return Ok(i + 1),
                _ => i += 1,
            }
        }
        let end = text[start..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(text.len(), |n| start + n);
        let rest = &text[start..end];
        if self.operators.iter().any(|o| contains(rest, o)) {
            return Err(Doubt);
        }
        Ok(end)
    }

    /// The end of the preprocessing number at `start` (`1'000`, `0x1p-3`, `1.e+5f`).
    fn number_end(&self, start: usize) -> usize {
        let text = self.text;
        let at = |i: usize| text.get(i).copied().unwrap_or(0);
        let mut i = start + 1;
        loop {
            let c = at(i);
            let sign = matches!(c, b'e' | b'E' | b'p' | b'P') && matches!(at(i + 1), b'+' | b'-');
            let separator = c == b'\'' && ident_byte(at(i + 1));
            if sign || separator {
                i += 2;
            } else if ident_byte(c) || c == b'.' {
                i += 1;
            } else {
                return i.min(text.len());
            }
        }
    }
}

#[cfg(test)]
#[path = "probe_tests.rs"]
mod tests;
