//! [`Karma`] for [`Client`]: the network side of the API the engine shares,
//! one forwarding method per row of the surface table
//! ([`karma_engine::for_each_method!`]).

use karma_engine::api::{Karma, KarmaError};
use karma_engine::ErrorCode;

use crate::{Client, ClientError};

impl KarmaError for ClientError {
    fn error_code(&self) -> Option<ErrorCode> {
        self.code()
    }
}

/// `impl Karma for Client`: every method forwards to the inherent method of
/// the same name.
macro_rules! client_forwards {
    ($( $(#[doc = $doc:literal])* $m:ident ($($arg:ident: $kind:ident),*) -> $out:ident: $ret:ident = $op:ident; )*) => {
        impl Karma for Client {
            type Error = ClientError;
            $(
                fn $m(
                    &self,
                    $($arg: karma_engine::arg_type!($kind)),*
                ) -> Result<karma_engine::ret_type!($ret), ClientError> {
                    Client::$m(self, $($arg),*)
                }
            )*
        }
    };
}
karma_engine::for_each_method!(client_forwards);
