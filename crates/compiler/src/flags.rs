//! The shape of a flag table, shared by every family's argument parser: each flag hoard has
//! to understand is one row naming its spelling, how it takes a value (`A`, the family's
//! arity) and what it means for caching (`C`, the family's class). A flag not in a table is
//! kept and hashed, so an unknown flag can cost a hit but never give a wrong one.

/// One row of a flag table.
pub(crate) struct Spec<A, C> {
    /// The flag as spelt, e.g. `-I` or `--crate-type`.
    pub name: &'static str,
    /// How it takes its value.
    pub arity: A,
    /// What it means for caching.
    pub class: C,
}

/// A row, for writing tables compactly.
pub(crate) const fn spec<A, C>(name: &'static str, arity: A, class: C) -> Spec<A, C> {
    Spec { name, arity, class }
}

/// A flag table written as groups of flags that share an arity and a class, one group a
/// line: `flag_table![Flag, Class::CompileOnly => "-c", "--compile"; ...]` is a `&[Spec]`
/// with one row per flag, in the order written.
macro_rules! flag_table {
    ($($arity:expr, $class:expr => $($name:literal),+;)*) => {
        &[$($($crate::flags::spec($name, $arity, $class),)+)*]
    };
}
pub(crate) use flag_table;
