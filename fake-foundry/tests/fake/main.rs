//! Black-box tests of the fakes: one test binary, a module per fake.

mod entra;
mod serve;
