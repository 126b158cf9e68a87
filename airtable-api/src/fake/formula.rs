//! A small `filterByFormula` evaluator for the fake: `{Field}='value'`, `=, !=, <, >, <=, >=`, `AND`, `OR`, `NOT`,
//! `RECORD_ID()`, `TRUE()`, `FALSE()`, `BLANK()`, `LOWER`, `UPPER`, `TRIM`, `LEN`, `FIND`, `&` concatenation, numbers,
//! single- or double-quoted strings with `\` escapes, `\}` and `\\` escapes in field names. Anything else is an `INVALID_FILTER_BY_FORMULA` error.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Field(String),
    Str(String),
    Num(f64),
    Call(String, Vec<Expr>),
    Bin(String, Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum V {
    Blank,
    Str(String),
    Num(f64),
    Bool(bool),
}

impl V {
    fn truthy(&self) -> bool {
        match self {
            Self::Blank => false,
            Self::Str(s) => !s.is_empty(),
            Self::Num(n) => *n != 0.0 && !n.is_nan(),
            Self::Bool(b) => *b,
        }
    }

    fn text(&self) -> String {
        match self {
            Self::Blank => String::new(),
            Self::Str(s) => s.clone(),
            Self::Num(n) => fmt_num(*n),
            Self::Bool(b) => {
                if *b {
                    "1".into()
                } else {
                    "0".into()
                }
            }
        }
    }

    fn num(&self) -> Option<f64> {
        match self {
            Self::Blank => Some(0.0),
            Self::Str(s) => s.trim().parse().ok(),
            Self::Num(n) => Some(*n),
            Self::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        }
    }
}

fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 { format!("{n:.0}") } else { n.to_string() }
}

/// A cell (REST JSON) as a formula value.
pub(crate) fn cell_to_v(v: Option<&Value>) -> V {
    match v {
        None | Some(Value::Null) => V::Blank,
        Some(Value::String(s)) => V::Str(s.clone()),
        Some(Value::Number(n)) => V::Num(n.as_f64().unwrap_or(0.0)),
        Some(Value::Bool(b)) => V::Bool(*b),
        Some(Value::Array(a)) => {
            V::Str(a.iter().map(|x| cell_to_v(Some(x)).text_or_name(x)).collect::<Vec<_>>().join(", "))
        }
        Some(o @ Value::Object(_)) => V::Str(display_object(o)),
    }
}

impl V {
    fn text_or_name(&self, raw: &Value) -> String {
        if raw.is_object() { display_object(raw) } else { self.text() }
    }
}

pub(crate) fn display_object(o: &Value) -> String {
    for k in ["name", "filename", "email", "text", "label", "url", "id"] {
        if let Some(s) = o.get(k).and_then(Value::as_str) {
            return s.to_owned();
        }
    }
    o.to_string()
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, t: &str) -> bool {
        self.ws();
        if self.s[self.i..].starts_with(t.as_bytes()) {
            self.i += t.len();
            true
        } else {
            false
        }
    }

    fn expr(&mut self) -> Result<Expr, String> {
        let mut left = self.concat()?;
        loop {
            let op = ["!=", "<=", ">=", "=", "<", ">"].into_iter().find(|op| self.eat(op));
            match op {
                Some(op) => {
                    let right = self.concat()?;
                    left = Expr::Bin(op.to_owned(), Box::new(left), Box::new(right));
                }
                None => return Ok(left),
            }
        }
    }

    fn concat(&mut self) -> Result<Expr, String> {
        let mut left = self.primary()?;
        while self.eat("&") {
            let right = self.primary()?;
            left = Expr::Bin("&".into(), Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn string(&mut self, q: u8) -> Result<Expr, String> {
        self.i += 1;
        let mut out = Vec::new();
        while self.i < self.s.len() {
            let c = self.s[self.i];
            self.i += 1;
            if c == b'\\' && self.i < self.s.len() {
                out.push(self.s[self.i]);
                self.i += 1;
            } else if c == q {
                return Ok(Expr::Str(String::from_utf8_lossy(&out).into_owned()));
            } else {
                out.push(c);
            }
        }
        Err("unterminated string".into())
    }

    fn primary(&mut self) -> Result<Expr, String> {
        match self.peek() {
            None => Err("unexpected end of formula".into()),
            Some(b'{') => {
                // `\}` is a `}` inside the name and `\\` a backslash (pyairtable's `field_name()` escaping)
                self.i += 1;
                let mut out = Vec::new();
                loop {
                    let c = *self.s.get(self.i).ok_or("unterminated {field}")?;
                    self.i += 1;
                    match c {
                        b'}' => break,
                        b'\\' if self.i < self.s.len() => {
                            out.push(self.s[self.i]);
                            self.i += 1;
                        }
                        c => out.push(c),
                    }
                }
                Ok(Expr::Field(String::from_utf8_lossy(&out).into_owned()))
            }
            Some(q @ (b'\'' | b'"')) => self.string(q),
            Some(b'(') => {
                self.i += 1;
                let e = self.expr()?;
                if !self.eat(")") {
                    return Err("expected )".into());
                }
                Ok(e)
            }
            Some(c) if c.is_ascii_digit() || c == b'-' || c == b'.' => {
                let start = self.i;
                self.i += 1;
                while self.i < self.s.len() && (self.s[self.i].is_ascii_digit() || self.s[self.i] == b'.') {
                    self.i += 1;
                }
                let t = std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
                t.parse().map(Expr::Num).map_err(|_| format!("bad number {t}"))
            }
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => {
                let start = self.i;
                while self.i < self.s.len() && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_') {
                    self.i += 1;
                }
                let name = String::from_utf8_lossy(&self.s[start..self.i]).to_ascii_uppercase();
                if !self.eat("(") {
                    return Err(format!("unknown identifier {name}"));
                }
                let mut args = Vec::new();
                if !self.eat(")") {
                    loop {
                        args.push(self.expr()?);
                        if self.eat(")") {
                            break;
                        }
                        if !self.eat(",") {
                            return Err("expected , or )".into());
                        }
                    }
                }
                Ok(Expr::Call(name, args))
            }
            Some(c) => Err(format!("unexpected character {:?}", char::from(c))),
        }
    }
}

/// Parses a formula.
pub(crate) fn parse(formula: &str) -> Result<Expr, String> {
    let mut p = Parser { s: formula.as_bytes(), i: 0 };
    let e = p.expr()?;
    if p.peek().is_some() {
        return Err(format!("unexpected trailing input at {}", p.i));
    }
    Ok(e)
}

/// Evaluates against a record: `field(name)` returns the REST cell by field name.
pub(crate) fn eval(
    e: &Expr,
    record_id: &str,
    field: &dyn Fn(&str) -> Result<Option<Value>, String>,
) -> Result<V, String> {
    Ok(match e {
        Expr::Field(name) => cell_to_v(field(name)?.as_ref()),
        Expr::Str(s) => V::Str(s.clone()),
        Expr::Num(n) => V::Num(*n),
        Expr::Bin(op, a, b) => {
            let (a, b) = (eval(a, record_id, field)?, eval(b, record_id, field)?);
            match op.as_str() {
                "&" => V::Str(a.text() + &b.text()),
                "=" => V::Bool(equal(&a, &b)),
                "!=" => V::Bool(!equal(&a, &b)),
                _ => {
                    let ord = match (a.num(), b.num(), &a, &b) {
                        (Some(x), Some(y), _, _) if !matches!((&a, &b), (V::Str(_), V::Str(_))) => x.partial_cmp(&y),
                        _ => Some(a.text().cmp(&b.text())),
                    };
                    let Some(ord) = ord else { return Ok(V::Bool(false)) };
                    V::Bool(match op.as_str() {
                        "<" => ord.is_lt(),
                        ">" => ord.is_gt(),
                        "<=" => ord.is_le(),
                        _ => ord.is_ge(),
                    })
                }
            }
        }
        Expr::Call(name, args) => {
            let vals = args.iter().map(|a| eval(a, record_id, field)).collect::<Result<Vec<_>, _>>()?;
            let arg = |i: usize| vals.get(i).cloned().unwrap_or(V::Blank);
            match name.as_str() {
                "AND" => V::Bool(vals.iter().all(V::truthy)),
                "OR" => V::Bool(vals.iter().any(V::truthy)),
                "NOT" => V::Bool(!arg(0).truthy()),
                "TRUE" => V::Bool(true),
                "FALSE" => V::Bool(false),
                "BLANK" => V::Blank,
                "RECORD_ID" => V::Str(record_id.to_owned()),
                "LOWER" => V::Str(arg(0).text().to_lowercase()),
                "UPPER" => V::Str(arg(0).text().to_uppercase()),
                "TRIM" => V::Str(arg(0).text().trim().to_owned()),
                "LEN" => {
                    #[allow(clippy::cast_precision_loss)]
                    let n = arg(0).text().chars().count() as f64;
                    V::Num(n)
                }
                "FIND" => {
                    #[allow(clippy::cast_precision_loss)]
                    let n = arg(1).text().find(&arg(0).text()).map_or(0.0, |i| (i + 1) as f64);
                    V::Num(n)
                }
                "IF" => {
                    if arg(0).truthy() {
                        arg(1)
                    } else {
                        arg(2)
                    }
                }
                other => return Err(format!("unsupported function {other}()")),
            }
        }
    })
}

fn equal(a: &V, b: &V) -> bool {
    match (a, b) {
        (V::Blank, V::Blank) => true,
        (V::Blank, x) | (x, V::Blank) => matches!(x, V::Str(s) if s.is_empty()) || matches!(x, V::Bool(false)),
        (V::Str(x), V::Str(y)) => x == y,
        _ => match (a.num(), b.num()) {
            (Some(x), Some(y)) => (x - y).abs() < f64::EPSILON,
            _ => a.text() == b.text(),
        },
    }
}

/// Whether the formula selects a record.
pub(crate) fn matches(
    e: &Expr,
    record_id: &str,
    field: &dyn Fn(&str) -> Result<Option<Value>, String>,
) -> Result<bool, String> {
    Ok(eval(e, record_id, field)?.truthy())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(f: &str, rec: &Value) -> Result<bool, String> {
        let e = parse(f)?;
        matches(&e, "rec1", &|name| Ok(rec.get(name).cloned()))
    }

    #[test]
    fn formulas() {
        let r = json!({"Name": "Ada", "Age": 36, "Tags": ["a", "b"], "Done": true});
        assert!(run("{Name}='Ada'", &r).unwrap());
        assert!(run("{Name} = \"Ada\"", &r).unwrap());
        assert!(!run("{Name}='Bob'", &r).unwrap());
        assert!(run("AND({Name}='Ada', {Age}>30)", &r).unwrap());
        assert!(run("OR({Name}='Bob', NOT({Missing}))", &r).unwrap());
        assert!(run("{Missing}=''", &r).unwrap());
        assert!(run("{Done}", &r).unwrap());
        assert!(run("RECORD_ID()='rec1'", &r).unwrap());
        assert!(run("LOWER({Name})='ada'", &r).unwrap());
        assert!(run("{Name}='O\\'Neil'", &json!({"Name": "O'Neil"})).unwrap());
        assert!(run("FIND('b', {Tags})", &r).unwrap());
        assert!(parse("{Name}=").is_err());
        assert!(parse("REGEX_MATCH({Name}, 'x') junk").is_err());
    }
}
