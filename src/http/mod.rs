//! HTTP/1.x: incremental parsing of each direction ([`parser`]), the messages it yields
//! ([`message`], built in spent ones kept for reuse: [`spare`]), and request/response pairing per connection ([`exchange`]).

pub mod exchange;
pub mod message;
pub mod parser;
pub(crate) mod spare;

pub use exchange::{Exchange, HttpConn, HttpStats};
pub use message::{Anomaly, Message};
pub use parser::{BodyPolicy, Limits};
