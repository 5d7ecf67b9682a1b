//! The Prometheus textfile nat-notify writes from the recorded state of each instance.

use anyhow::anyhow;
use hakit_core::metrics::{Kind, Textfile};

use crate::{config::Instance, engine::Settings, event::State, runtime::now_unix};

/// Writes the Prometheus textfile for `instances` from their recorded state.
pub fn write_metrics(s: &Settings, instances: &[Instance]) -> anyhow::Result<()> {
    let Some(path) = &s.textfile else {
        return Ok(());
    };
    let mut t = Textfile::for_pair(s.pair.as_deref());
    t.build_info();
    if let Some(every) = s.heartbeat {
        t.add(
            "hakit_nat_notify_fifo_heartbeat_timestamp_seconds",
            Kind::Gauge,
            "Unix time the notify FIFO reader last proved it is alive.",
            &[],
            now_unix(),
        );
        t.add(
            "hakit_nat_notify_fifo_heartbeat_interval_seconds",
            Kind::Gauge,
            "How often the FIFO reader refreshes its heartbeat.",
            &[],
            every.as_secs_f64(),
        );
    }
    for inst in instances {
        let r = s.runtime.recorded(&inst.name)?;
        let i = inst.name.as_str();
        for st in [State::Master, State::Backup, State::Fault, State::Stop] {
            let v = if r.state == Some(st) { 1.0 } else { 0.0 };
            t.add(
                "hakit_nat_notify_state",
                Kind::Gauge,
                "1 for the state the instance was last moved to.",
                &[("vrrp_instance", i), ("state", st.as_str())],
                v,
            );
            let n = r.transitions_total.get(st.as_str()).copied().unwrap_or(0);
            t.add(
                "hakit_nat_notify_transitions_total",
                Kind::Counter,
                "Transitions that changed something, by target state.",
                &[("vrrp_instance", i), ("state", st.as_str())],
                n as f64,
            );
        }
        t.add(
            "hakit_nat_notify_converged",
            Kind::Gauge,
            "1 if the last transition completed every step.",
            &[("vrrp_instance", i)],
            f64::from(u8::from(r.converged)),
        );
        t.add(
            "hakit_nat_notify_last_transition_timestamp_seconds",
            Kind::Gauge,
            "Unix time the last transition started.",
            &[("vrrp_instance", i)],
            r.at_unix,
        );
        t.add(
            "hakit_nat_notify_last_transition_duration_seconds",
            Kind::Gauge,
            "Duration of the last transition.",
            &[("vrrp_instance", i)],
            r.duration_seconds,
        );
        // A step with nothing to do has nothing to say: a fleet pays for every series.
        for (step, rec) in r.steps.iter().filter(|(_, rec)| !rec.skipped) {
            t.add(
                "hakit_nat_notify_step_duration_seconds",
                Kind::Gauge,
                "Duration of each step in its last run.",
                &[("vrrp_instance", i), ("step", step)],
                rec.seconds,
            );
            t.add(
                "hakit_nat_notify_step_ok",
                Kind::Gauge,
                "1 if the step succeeded in its last run.",
                &[("vrrp_instance", i), ("step", step)],
                f64::from(u8::from(rec.ok)),
            );
        }
        for (step, n) in &r.step_failures_total {
            t.add(
                "hakit_nat_notify_step_failures_total",
                Kind::Counter,
                "Failed step runs.",
                &[("vrrp_instance", i), ("step", step)],
                *n as f64,
            );
        }
    }
    t.write(path)
        .map_err(|e| anyhow!("metrics textfile: {e:#}"))
}
