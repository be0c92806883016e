//! Integration tests: the real server (in process or as the real binary)
//! against the Graph API simulator over loopback HTTP.

mod alerting;
mod binary;
mod counting;
mod dashboards;
mod deploy;
mod discovery;
mod exposition;
mod faults;
mod health;
mod hostile;
mod lifecycle;
mod probe;
mod properties;
mod resilience;
mod restart;
mod sharding;
mod stack;
mod support;
mod sweep;
mod traces;
mod web;
mod web_config;
