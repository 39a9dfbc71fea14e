//! End-to-end tests: the real `berth` binary, started as a process, against the real Docker
//! engine, registry and nginx of `scripts/testenv`. Under `CI=true` a missing test
//! environment fails these tests; elsewhere they are skipped with a note.

mod support;

mod crash;
mod deploy;
mod engine;
mod lifecycle;
