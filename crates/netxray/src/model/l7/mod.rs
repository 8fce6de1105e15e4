//! Application-layer decoding for `netxray dns` and `netxray http`: pure
//! parsers fed with the bytes the kernel copied from system calls, and the
//! pairing of requests with their answers.

pub mod call;
pub mod dns;
pub mod dns_query;
pub mod http;
pub mod http_exchange;
pub mod summary;
