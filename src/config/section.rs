//! How a section declares its settings: `section!` takes each key once — its doc
//! comment, type and default, whether a reload (SIGHUP) applies it, and the seeds'
//! environment names that set it — and makes the struct serde reads, its `Default`, and
//! the [`Key`] list the loader, the reload and the docs test go over. A key cannot be
//! named in a list without being a field, nor be a field without a default.

/// What a section declares about one key besides its type and default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The key, as in the file and in `HERMOD_<SECTION>_<KEY>`.
    pub name: &'static str,
    /// The names operators know from the seeds' runbooks that set it.
    pub env: &'static [&'static str],
    /// A reload applies it while hermod runs; else it waits for a restart.
    pub live: bool,
}

/// Declares a configuration table: the struct (`Debug`, `Clone`, serde with defaults and
/// no unknown keys), its `Default`, and `DECLARED`, its keys. Each field reads
/// `pub NAME: TYPE = DEFAULT => (live | restart, ["SEED_NAME", ...]),` after its doc
/// comment and serde attributes.
macro_rules! section {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$field_meta:meta])*
                pub $field:ident : $ty:ty = $default:expr
                    => ($when:ident, [$($env:literal),* $(,)?]),
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            $( $(#[$field_meta])* pub $field: $ty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                $name { $( $field: $default, )* }
            }
        }

        impl $name {
            /// Every key of the table, with its seed names and whether a reload applies it.
            pub const DECLARED: &'static [$crate::config::section::Key] = &[
                $(
                    $crate::config::section::Key {
                        name: stringify!($field),
                        env: &[$($env),*],
                        live: section!(@live $when),
                    },
                )*
            ];
        }
    };
    (@live live) => { true };
    (@live restart) => { false };
}

pub(crate) use section;
