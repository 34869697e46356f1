//! Sending TLS reports (RFC 8460 §3): once a period has ended, each domain counted in it
//! whose `_smtp._tls` TXT record names destinations (`rua=mailto:...,https://...`) gets
//! its report: by mail, as a message hermod queues for itself (null sender, the gzipped
//! JSON attached, as mail-auth writes it), and by HTTPS POST (`application/tlsrpt+gzip`,
//! the certificate verified, no redirect). A destination whose address is loopback or
//! private is refused unless allowed: the record is the domain's, the network is not.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mail_auth::mta_sts::ReportUri;
use mail_auth::report::tlsrpt::TlsReport;

use super::enqueue::Intake;
use super::unix_now;
use crate::core::id::QueueIdGenerator;
use crate::outbound::mta_sts::fetch::error_chain;
use crate::outbound::mx::{MxResolver, is_negative_answer};
use crate::outbound::tls_report::report::{Reporter, build, destinations, gzip_json};
use crate::outbound::tls_report::{DomainPeriod, TlsReports};
use crate::protocol::address::{ReversePath, parse_forward_path};
use crate::protocol::session::AcceptedMessage;

/// Signs a message; the header lines to put in front, or why not.
pub type DkimSign = Box<dyn Fn(&[u8]) -> Result<Vec<String>, String> + Send + Sync>;

/// Reports being sent at once at most.
const MAX_SENDING: usize = 8;

/// Destinations of one report at most (a record may list many).
const MAX_DESTINATIONS: usize = 4;

/// The longest an HTTPS POST or a report's way into the queue may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// What sends the reports.
pub struct TlsReportSender {
    /// The counts.
    pub reports: Arc<TlsReports>,
    /// Where `_smtp._tls` records and report hosts are looked up.
    pub resolver: MxResolver,
    /// The way into hermod's own queue, for reports by mail.
    pub intake: Intake,
    /// Queue ids for those messages.
    pub ids: Arc<QueueIdGenerator>,
    /// Who the reports come from.
    pub reporter: Reporter,
    /// The `From:` of reports by mail.
    pub from: String,
    /// The roots HTTPS destinations are verified against (`verify`'s).
    pub https_tls: Arc<rustls::ClientConfig>,
    /// A configuration that takes any certificate: RFC 8460 §3 lets a report go to a
    /// destination whose certificate does not verify, and reports are for exactly the
    /// domains whose TLS is broken.
    pub https_any_certificate: Arc<rustls::ClientConfig>,
    /// Signs a report message (DKIM, RFC 8460 §3 wants it) for the `From:` domain; the
    /// header lines to put in front. `None`: hermod has no key for that domain.
    pub dkim: Option<DkimSign>,
    /// HTTPS destinations may be loopback or private addresses (tests, private networks).
    pub private_destinations: bool,
    /// How often counts are saved and finished periods looked for.
    pub tick: Duration,
}

impl TlsReportSender {
    /// Saves the counts every tick and sends the periods that have ended, forever: each
    /// period on its own task, [`MAX_SENDING`] at once, so slow destinations delay
    /// neither the others nor the saving of counts.
    pub async fn run(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(self.tick);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let sending = Arc::new(tokio::sync::Semaphore::new(MAX_SENDING));
        loop {
            ticks.tick().await;
            self.reports.flush().await;
            for period in self.reports.take_finished(unix_now()) {
                let (sender, sending) = (self.clone(), sending.clone());
                actix::spawn(async move {
                    let Ok(_turn) = sending.acquire().await else {
                        return;
                    };
                    sender.send(&period).await;
                    sender.reports.done(&period);
                });
            }
        }
    }

    /// Sends `period`'s report to every destination its domain names.
    async fn send(&self, period: &DomainPeriod) {
        let domain = &period.domain;
        let Some(uris) = self.destinations(domain).await else {
            return;
        };
        let report = build(period, &self.reporter);
        let gz = match gzip_json(&report) {
            Ok(gz) => gz,
            Err(e) => {
                tracing::warn!(domain = %domain, error = %e, "cannot compress a TLS report");
                return;
            }
        };
        for uri in uris.iter().take(MAX_DESTINATIONS) {
            let (kind, result) = match uri {
                ReportUri::Mail(address) => {
                    ("mailto", self.mail(domain, &report, &gz, address).await)
                }
                ReportUri::Http(url) => ("https", self.post(url, &gz).await),
            };
            let destination = match uri {
                ReportUri::Mail(a) => format!("mailto:{a}"),
                ReportUri::Http(u) => u.clone(),
            };
            let destination = crate::core::message_trace::bounded(&destination);
            match result {
                Ok(detail) => {
                    metrics::counter!("tls_reports_sent_total", "destination" => kind, "result" => "ok").increment(1);
                    tracing::info!(domain = %domain, destination = %destination, detail = %detail,
                        "TLS report sent");
                }
                Err(e) => {
                    metrics::counter!("tls_reports_sent_total", "destination" => kind, "result" => "failed").increment(1);
                    tracing::warn!(domain = %domain, destination = %destination, error = %e,
                        "TLS report not sent");
                }
            }
        }
    }

    /// The destinations `domain`'s `_smtp._tls` record names; `None` when it has none.
    async fn destinations(&self, domain: &str) -> Option<Vec<ReportUri>> {
        let name = format!("_smtp._tls.{domain}.");
        let lookup = match self.resolver.resolver().txt_lookup(name.as_str()).await {
            Ok(lookup) => lookup,
            Err(e) if is_negative_answer(&e) => return None,
            Err(e) => {
                tracing::warn!(domain = %domain, error = %e, "TLS report not sent: the _smtp._tls lookup failed");
                return None;
            }
        };
        // RFC 8460 §3: anything but exactly one TLSRPTv1 record means no reporting.
        let mut records = lookup.answers().iter().filter_map(|r| match &r.data {
            hickory_resolver::proto::rr::RData::TXT(txt) => {
                destinations(&String::from_utf8_lossy(&txt.txt_data.concat()))
            }
            _ => None,
        });
        match (records.next(), records.next()) {
            (Some(one), None) => Some(one),
            _ => None,
        }
    }

    /// Queues the report for `address` as a message from hermod itself.
    async fn mail(
        &self,
        domain: &str,
        report: &TlsReport,
        gz: &[u8],
        address: &str,
    ) -> Result<String, String> {
        let address = address.split('?').next().unwrap_or_default();
        let (mailbox, _) = parse_forward_path(&format!("<{address}>"), "")
            .map_err(|e| format!("not an address: {e}"))?;
        if mailbox.domain.is_empty() {
            return Err("not an address: no domain".into());
        }
        let to = mailbox.to_string();
        let mut data = Vec::new();
        report
            .write_rfc5322_from_bytes(
                domain,
                &self.reporter.submitter,
                self.from.as_str(),
                std::iter::once(to.as_str()),
                gz,
                &mut data,
            )
            .map_err(|e| e.to_string())?;
        if let Some(sign) = &self.dkim {
            let headers = sign(&data)?;
            let mut signed = Vec::with_capacity(data.len() + 1024);
            for header in headers {
                signed.extend_from_slice(header.as_bytes());
                signed.extend_from_slice(b"\r\n");
            }
            signed.extend_from_slice(&data);
            data = signed;
        }
        let message = AcceptedMessage {
            id: self.ids.next_id(),
            sender: ReversePath::Null,
            recipients: vec![mailbox],
            options: Default::default(),
            data,
            body_file: None,
            user: None,
            hold: false,
            route: None,
            claim: None,
            trace: None,
            tls_report: true,
        };
        let id = self
            .intake
            .enqueue(
                message,
                IpAddr::from([127, 0, 0, 1]),
                Instant::now() + SEND_TIMEOUT,
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(format!("queued as {id}"))
    }

    /// POSTs the report to `url`.
    async fn post(&self, url: &str, gz: &[u8]) -> Result<String, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        let host = match (parsed.scheme(), parsed.host_str()) {
            ("https", Some(host)) => host.to_owned(),
            _ => return Err("not an https:// URL".into()),
        };
        let port = parsed.port_or_known_default().unwrap_or(443);
        let addr = self.address_of(&host, port).await?;
        match self
            .post_to(&parsed, &host, addr, &self.https_tls, gz)
            .await
        {
            Err(e) if e.contains("invalid peer certificate") => {
                let answer = self
                    .post_to(&parsed, &host, addr, &self.https_any_certificate, gz)
                    .await?;
                Ok(format!("{answer}, its certificate not verified ({e})"))
            }
            other => other,
        }
    }

    /// One POST of `gz` to `url` (whose host is `host`, at `addr`) over `tls`.
    async fn post_to(
        &self,
        url: &reqwest::Url,
        host: &str,
        addr: SocketAddr,
        tls: &rustls::ClientConfig,
        gz: &[u8],
    ) -> Result<String, String> {
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls.clone())
            .resolve(host, addr)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(SEND_TIMEOUT)
            .user_agent(concat!("hermod/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        let response = client
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/tlsrpt+gzip")
            .body(gz.to_vec())
            .send()
            .await
            // Without the URL: its text is the domain's, and must not pass for a reason.
            .map_err(|e| error_chain(&e.without_url()))?;
        let status = response.status();
        if status.is_success() {
            Ok(format!("HTTP {}", status.as_u16()))
        } else {
            Err(format!("HTTP {}", status.as_u16()))
        }
    }

    /// The address to POST to: the host's first, unless it is one the network keeps
    /// to itself and that is not allowed.
    async fn address_of(&self, host: &str, port: u16) -> Result<SocketAddr, String> {
        let ip = match host.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => self
                .resolver
                .resolver()
                .lookup_ip(format!("{host}.").as_str())
                .await
                .map_err(|e| format!("{host} has no address: {e}"))?
                .iter()
                .next()
                .ok_or_else(|| format!("{host} has no address"))?,
        };
        if !self.private_destinations && is_private(ip) {
            return Err(format!(
                "{host} is {ip}, a loopback or private address (tls_report.private_destinations is off)"
            ));
        }
        Ok(SocketAddr::new(ip, port))
    }
}

/// Loopback, private, link-local, unspecified or unique-local.
fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (18..20).contains(&b))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xffc0) == 0xfec0
                || embedded_v4(v6).is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

/// The IPv4 address inside an IPv6 one: IPv4-mapped, IPv4-compatible, NAT64
/// (64:ff9b::/96) or 6to4 (2002::/16).
fn embedded_v4(v6: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let o = v6.octets();
    let last = std::net::Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    match v6.segments() {
        [0, 0, 0, 0, 0, 0xffff, ..] | [0, 0, 0, 0, 0, 0, ..] | [0x64, 0xff9b, 0, 0, 0, 0, ..] => {
            Some(last)
        }
        [0x2002, ..] => Some(std::net::Ipv4Addr::new(o[2], o[3], o[4], o[5])),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_told_apart() {
        for private in [
            "100.64.0.1",
            "0.1.2.3",
            "198.18.0.1",
            "240.0.0.1",
            "fec0::1",
            "::10.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::1",
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.1.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(private.parse().unwrap()), "{private}");
        }
        for public in [
            "192.0.2.1",
            "2001:db8::1",
            "64:ff9b::c000:201",
            "2002:c000:201::1",
        ] {
            assert!(!is_private(public.parse().unwrap()), "{public}");
        }
    }
}
