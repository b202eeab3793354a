//! HTTP/1.x: incremental parsing of each direction ([`parser`]), the messages it yields
//! ([`message`]), and request/response pairing per connection ([`exchange`]).

pub mod exchange;
pub mod message;
pub mod parser;

pub use exchange::{Exchange, HttpConn};
pub use message::{Anomaly, Message};
pub use parser::{BodyPolicy, Limits};
