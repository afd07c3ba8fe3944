//! Builder-style setters for the public configuration structs.
//!
//! The configuration and statistics structs are `#[non_exhaustive]` so that a field can
//! be added in a minor release: outside this crate they cannot be built with a struct
//! literal, only from their constructor or `Default` and then adjusted, either by
//! assigning the public fields or with these `with_<field>` setters.

/// `impl $ty { pub fn $setter(mut self, value: $t) -> Self { self.$field = value; self } }`
/// for each `$setter => $field: $t`.
macro_rules! setters {
    ($ty:ident { $($setter:ident => $field:ident: $t:ty),* $(,)? }) => {
        impl $ty {
            $(
                #[doc = concat!(
                    "Returns `self` with [`", stringify!($field), "`](", stringify!($ty),
                    "::", stringify!($field), ") set to `value` (builder style)."
                )]
                #[must_use]
                pub fn $setter(mut self, value: $t) -> Self {
                    self.$field = value;
                    self
                }
            )*
        }
    };
}

pub(crate) use setters;
