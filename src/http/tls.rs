//! Clear text beyond loopback, said out loud: [`warn_if_exposed`]. (The listeners serve TLS
//! themselves, in `listener.rs`.)

use std::net::SocketAddr;

/// Logs a loud warning when `listen` is beyond loopback and served without TLS. `what` is
/// what travels in clear (for the log line), `section` the config table to fix.
pub fn warn_if_exposed(listen: SocketAddr, tls: bool, what: &str, section: &str) {
    if let Some(warning) = exposure_warning(listen, tls, what, section) {
        tracing::warn!("{warning}");
    }
}

fn exposure_warning(listen: SocketAddr, tls: bool, what: &str, section: &str) -> Option<String> {
    (!tls && !listen.ip().is_loopback()).then(|| {
        format!(
            "{what} in clear text on {listen}; set [{section}] tls_cert/tls_key or keep it on \
             loopback"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_text_beyond_loopback_is_warned_about() {
        let what = "the HTTP API carries MSISDNs and tokens";
        let warning = |addr: &str, tls| exposure_warning(addr.parse().unwrap(), tls, what, "http");
        assert_eq!(
            warning("0.0.0.0:8080", false).as_deref(),
            Some(
                "the HTTP API carries MSISDNs and tokens in clear text on 0.0.0.0:8080; set \
                 [http] tls_cert/tls_key or keep it on loopback"
            )
        );
        assert!(warning("[::]:8080", false).is_some());
        assert!(warning("10.0.0.5:8080", false).is_some());
        assert_eq!(warning("0.0.0.0:8080", true), None);
        assert_eq!(warning("127.0.0.1:8080", false), None);
        assert_eq!(warning("127.0.0.2:8080", false), None);
        assert_eq!(warning("[::1]:8080", false), None);
    }
}
