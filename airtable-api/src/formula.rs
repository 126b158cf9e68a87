//! Building `filterByFormula` expressions with correct quoting, instead of `format!`.
//!
//! Airtable formulas reference fields as `{Field Name}` and take text literals in quotes; a value that contains a
//! quote or a backslash, or a field name that contains `}`, breaks a hand-made formula (or, worse, changes what it
//! matches). The rules applied here are pyairtable's (`pyairtable/formulas.py`, see api-notes/airtable.md F):
//!
//! - text: `'…'` with `\` → `\\` and `'` → `\'` (`quoted()`);
//! - field: `{…}` with `}` → `\}` (`field_name()`); a `\` in a field name is written `\\`, so the backslash is never
//!   read as the start of an escape. (Airtable documents neither; pyairtable notes that names with more than one `}`
//!   may still be rejected by Airtable. Prefer field names without braces.)
//! - numbers in plain decimal notation (never an exponent); a non-finite number, which Airtable has no literal for,
//!   becomes `ERROR()`, which matches no record ("if the result is … #Error! the record will not be included",
//!   api-notes/airtable.md B.1);
//! - booleans as `TRUE()` / `FALSE()`; `AND(…)`, `OR(…)`, `NOT(…)` (`!formula`); comparison operands that are themselves
//!   comparisons are parenthesised.
//!
//! ```
//! use airtable_client::formula::Formula;
//! let f = Formula::and([
//!     Formula::field("Kommo Deal ID").eq("123"),
//!     Formula::field("Name").eq("O'Brien \\ Co"),
//!     Formula::field("Amount }").gt(2.5),
//! ]);
//! assert_eq!(f.to_string(), r"AND({Kommo Deal ID}='123',{Name}='O\'Brien \\ Co',{Amount \}}>2.5)");
//! ```

use std::fmt;

/// An Airtable formula (a `filterByFormula` value). Build with the constructors and combinators; [`Formula::raw`]
/// takes a hand-written piece verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Formula {
    text: String,
    /// A single operand (field, literal, call, parenthesised): usable inside a comparison without parentheses.
    atomic: bool,
}

impl Formula {
    /// A formula written by hand, used verbatim (treated as needing parentheses inside a comparison).
    #[must_use]
    pub fn raw(text: impl Into<String>) -> Self {
        Self { text: text.into(), atomic: false }
    }

    /// A field reference `{name}`, escaped (see the module docs).
    #[must_use]
    pub fn field(name: &str) -> Self {
        let mut text = String::with_capacity(name.len() + 2);
        text.push('{');
        for c in name.chars() {
            match c {
                '}' => text.push_str("\\}"),
                '\\' => text.push_str("\\\\"),
                c => text.push(c),
            }
        }
        text.push('}');
        Self { text, atomic: true }
    }

    /// A text literal `'value'`, with `\` and `'` escaped.
    #[must_use]
    pub fn text(value: &str) -> Self {
        let mut text = String::with_capacity(value.len() + 2);
        text.push('\'');
        for c in value.chars() {
            match c {
                '\\' => text.push_str("\\\\"),
                '\'' => text.push_str("\\'"),
                c => text.push(c),
            }
        }
        text.push('\'');
        Self { text, atomic: true }
    }

    /// A number literal in plain decimal notation; NaN and infinities become `ERROR()` (matches nothing).
    #[must_use]
    pub fn number(n: f64) -> Self {
        if n.is_finite() {
            // `Display` for f64 never uses an exponent; -0 is 0
            let n = if n == 0.0 { 0.0 } else { n };
            Self { text: format!("{n}"), atomic: n >= 0.0 }
        } else {
            Self::call("ERROR", [])
        }
    }

    /// An integer literal.
    #[must_use]
    pub fn integer(n: i64) -> Self {
        Self { text: n.to_string(), atomic: n >= 0 }
    }

    /// `TRUE()` or `FALSE()`.
    #[must_use]
    pub fn boolean(b: bool) -> Self {
        Self::call(if b { "TRUE" } else { "FALSE" }, [])
    }

    /// A function call `NAME(arg, …)` (the name is written as given).
    #[must_use]
    pub fn call(name: &str, args: impl IntoIterator<Item = Formula>) -> Self {
        let args: Vec<String> = args.into_iter().map(|a| a.text).collect();
        Self { text: format!("{name}({})", args.join(",")), atomic: true }
    }

    /// `AND(a, b, …)`: every formula holds. A single formula is returned as is; none is `TRUE()`.
    #[must_use]
    pub fn and(items: impl IntoIterator<Item = Formula>) -> Self {
        Self::group("AND", items, true)
    }

    /// `OR(a, b, …)`: at least one holds. A single formula is returned as is; none is `FALSE()`.
    #[must_use]
    pub fn or(items: impl IntoIterator<Item = Formula>) -> Self {
        Self::group("OR", items, false)
    }

    fn group(name: &str, items: impl IntoIterator<Item = Formula>, empty: bool) -> Self {
        let mut items: Vec<Formula> = items.into_iter().collect();
        match items.len() {
            0 => Self::boolean(empty),
            1 => items.pop().expect("one item"),
            _ => Self::call(name, items),
        }
    }

    fn operand(self) -> String {
        if self.atomic { self.text } else { format!("({})", self.text) }
    }

    fn binary(self, op: &str, other: impl Into<Formula>) -> Self {
        Self { text: format!("{}{op}{}", self.operand(), other.into().operand()), atomic: false }
    }

    /// `self = value` (text values compare as text: `{F}='123'`).
    #[must_use]
    pub fn eq(self, value: impl Into<Formula>) -> Self {
        self.binary("=", value)
    }

    /// `self != value`.
    #[must_use]
    pub fn ne(self, value: impl Into<Formula>) -> Self {
        self.binary("!=", value)
    }

    /// `self < value`.
    #[must_use]
    pub fn lt(self, value: impl Into<Formula>) -> Self {
        self.binary("<", value)
    }

    /// `self <= value`.
    #[must_use]
    pub fn le(self, value: impl Into<Formula>) -> Self {
        self.binary("<=", value)
    }

    /// `self > value`.
    #[must_use]
    pub fn gt(self, value: impl Into<Formula>) -> Self {
        self.binary(">", value)
    }

    /// `self >= value`.
    #[must_use]
    pub fn ge(self, value: impl Into<Formula>) -> Self {
        self.binary(">=", value)
    }

    /// The formula text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// `!f` is `NOT(f)`.
impl std::ops::Not for Formula {
    type Output = Self;
    fn not(self) -> Self {
        Self::call("NOT", [self])
    }
}

impl fmt::Display for Formula {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<Formula> for String {
    fn from(f: Formula) -> Self {
        f.text
    }
}

/// Text becomes a quoted literal ([`Formula::text`]), never a field or formula.
impl From<&str> for Formula {
    fn from(s: &str) -> Self {
        Self::text(s)
    }
}
/// Text becomes a quoted literal ([`Formula::text`]).
impl From<String> for Formula {
    fn from(s: String) -> Self {
        Self::text(&s)
    }
}
/// [`Formula::text`].
impl From<&String> for Formula {
    fn from(s: &String) -> Self {
        Self::text(s)
    }
}
/// [`Formula::number`].
impl From<f64> for Formula {
    fn from(n: f64) -> Self {
        Self::number(n)
    }
}
/// [`Formula::integer`].
impl From<i64> for Formula {
    fn from(n: i64) -> Self {
        Self::integer(n)
    }
}
/// [`Formula::integer`].
impl From<i32> for Formula {
    fn from(n: i32) -> Self {
        Self::integer(n.into())
    }
}
/// [`Formula::integer`] (values above `i64::MAX` are written in decimal too).
impl From<u64> for Formula {
    fn from(n: u64) -> Self {
        Self { text: n.to_string(), atomic: true }
    }
}
/// [`Formula::boolean`].
impl From<bool> for Formula {
    fn from(b: bool) -> Self {
        Self::boolean(b)
    }
}

/// `{field}='value'`: records whose `field` equals the text `value` (the common look-up by an external key).
#[must_use]
pub fn field_eq(field: &str, value: &str) -> Formula {
    Formula::field(field).eq(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(field_eq("Kommo Deal ID", "123").to_string(), "{Kommo Deal ID}='123'");
        assert_eq!(field_eq("Name", r"O'Brien \ Co").to_string(), r"{Name}='O\'Brien \\ Co'");
        assert_eq!(Formula::field("a}b").to_string(), r"{a\}b}");
        assert_eq!(Formula::field(r"a\b").to_string(), r"{a\\b}");
        assert_eq!(Formula::text(r"\'").to_string(), r"'\\\''");
        assert_eq!(Formula::text("\"x\"").to_string(), "'\"x\"'", "double quotes need no escape in single quotes");
        assert_eq!(Formula::text("{Name}").to_string(), "'{Name}'", "braces in a value stay text");
    }

    #[test]
    fn numbers_and_booleans() {
        assert_eq!(Formula::number(2.5).to_string(), "2.5");
        assert_eq!(Formula::number(1e21).to_string(), "1000000000000000000000");
        assert_eq!(Formula::number(1e-7).to_string(), "0.0000001");
        assert_eq!(Formula::number(-0.0).to_string(), "0");
        assert_eq!(Formula::number(f64::NAN).to_string(), "ERROR()");
        assert_eq!(Formula::field("A").eq(-3).to_string(), "{A}=(-3)");
        assert_eq!(Formula::field("Done").eq(true).to_string(), "{Done}=TRUE()");
    }

    #[test]
    fn combinators() {
        let f = Formula::or([field_eq("A", "x"), !Formula::field("B").ge(2)]);
        assert_eq!(f.to_string(), "OR({A}='x',NOT({B}>=2))");
        assert_eq!(Formula::and([]).to_string(), "TRUE()");
        assert_eq!(Formula::or([]).to_string(), "FALSE()");
        assert_eq!(Formula::and([field_eq("A", "x")]).to_string(), "{A}='x'");
        // a comparison used as an operand is parenthesised
        assert_eq!(field_eq("A", "x").eq(false).to_string(), "({A}='x')=FALSE()");
        assert_eq!(Formula::raw("LEN({A})>1").eq(true).to_string(), "(LEN({A})>1)=TRUE()");
    }
}

/// Property tests: whatever the name and value, the fake's formula parser (which reads Airtable's escapes) gets back
/// exactly the field and the value that went in — nothing leaks out of its quotes or braces.
#[cfg(all(test, feature = "fake"))]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::fake::formula::{Expr, parse};

    fn bin(op: &str, a: Expr, b: Expr) -> Expr {
        Expr::Bin(op.into(), Box::new(a), Box::new(b))
    }

    proptest! {
        #[test]
        fn field_and_text_survive_any_characters(name in "\\PC{0,24}", value in "\\PC{0,40}") {
            let f = Formula::field(&name).eq(value.as_str());
            prop_assert_eq!(parse(f.as_str()), Ok(bin("=", Expr::Field(name), Expr::Str(value))));
        }

        #[test]
        fn finite_numbers_round_trip(n in any::<f64>().prop_filter("finite", |n| n.is_finite())) {
            let f = Formula::field("N").lt(n);
            prop_assert_eq!(parse(f.as_str()), Ok(bin("<", Expr::Field("N".into()), Expr::Num(if n == 0.0 { 0.0 } else { n }))));
        }

        #[test]
        fn and_or_keep_every_clause(pairs in proptest::collection::vec(("[a-z}'\\\\ ]{1,8}", "\\PC{0,12}"), 2..6), any_of in any::<bool>()) {
            let clauses: Vec<Formula> = pairs.iter().map(|(f, v)| field_eq(f, v)).collect();
            let f = if any_of { Formula::or(clauses) } else { Formula::and(clauses) };
            let want: Vec<Expr> = pairs.into_iter().map(|(f, v)| bin("=", Expr::Field(f), Expr::Str(v))).collect();
            prop_assert_eq!(parse(f.as_str()), Ok(Expr::Call(if any_of { "OR" } else { "AND" }.into(), want)));
        }
    }
}
