//! Whole answers.
