//! The error of each HTTP boundary and its one mapping to a response: JSON for the backend
//! API ([`ApiError`]), a page for browsers ([`Page`]), plain text for WeChat's push
//! ([`PushError`]). Every code the API and the push endpoint answer is in [`catalogue`].

mod api;
pub mod catalogue;
mod page;
mod push;

pub use api::{ApiError, ErrorBody, ErrorObject};
pub use catalogue::{ErrorCode, PushCode, ReturnError};
pub use page::{Page, PageLink};
pub use push::PushError;
