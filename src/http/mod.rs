//! HTTP/1.x: incremental parsing of each direction ([`parser`]), the messages it yields
//! ([`message`], built in spent ones kept for reuse: `spare`), and request/response pairing per connection ([`exchange`]).

mod conn;
pub mod exchange;
mod head;
pub mod message;
mod pairing;
pub mod parser;
pub(crate) mod spare;
mod start_line;

pub use exchange::{Exchange, HttpConn, HttpStats};
pub use message::{Anomaly, Message};
pub use parser::{BodyPolicy, Limits};
