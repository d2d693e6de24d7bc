//! runc's runtime options reaching tent the way containerd's own client sends them
//! (`ctr run --no-pivot` puts `containerd.runc.v1.Options{NoPivotRoot}` into the
//! Create request for any runtime): tent accepts them, applies what it can and says
//! what it ignores, instead of failing the container.
use tent_integration::{is_runc, unique_id, Containerd, RunOpts};

#[test]
fn runc_options_from_ctr_are_accepted_and_what_is_ignored_is_logged() {
    let c = Containerd::shared();
    let id = unique_id("runc-opts");
    let r = c.run(
        &id,
        &["sh", "-c", "echo ran"],
        &RunOpts::default().flag("--no-pivot"),
    );
    assert_eq!(r.code, Some(0), "{r:#?}\n{}", c.log_tail(30));
    assert_eq!(r.stdout.trim(), "ran", "{r:#?}");
    if !is_runc() {
        let log = c.log_tail(400);
        assert!(
            log.contains("runc option NoPivotRoot ignored"),
            "the shim did not say it ignored NoPivotRoot:\n{log}"
        );
    }
    c.assert_no_leftovers(&id);
}
