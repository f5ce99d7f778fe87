//! The behavioural suite on the memory store.
mod common;

slates_suite!(common::Backend::Memory);
