//! The deployment material under `deploy/` (docs/deploy.md), each file checked as shipped:
//! the systemd units with `systemd-analyze` and by running their command lines, the container
//! build file statically (nothing can pull a base image here), the Kubernetes manifests against
//! the API schemas (`kubernetes-validate`, offline) and field by field. Every command line in
//! them is read by the program's own parser ([`common::assert_accepted`]).

mod common;
mod container;
mod kubernetes;
mod systemd;
