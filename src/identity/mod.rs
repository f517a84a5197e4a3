//! Who a person is: the rules that establish a WeChat identity and link it to a business
//! user, for both ways in, side by side. The HTTP routes only read requests and render
//! answers.
//!
//! - [`web_oauth`]: the web authorization flow's one exchange of a code (Official Account
//!   pages), and the answer a repeated callback is owed.
//! - [`mini_program`]: mini-program login (`jscode2session`), the session key sealed.
//! - [`link`]: the linking rules both flows bind by, and the jump-out ticket.
//! - [`profile`]: refreshing a profile with the person's own web tokens.

pub mod link;
pub mod mini_program;
pub mod profile;
pub mod web_oauth;
