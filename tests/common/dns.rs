//! A real DNS server for end-to-end tests: hickory-server on `127.0.0.1:<random port>`,
//! UDP and TCP on the same port, answering authoritatively from in-memory zones.
//!
//! Why a real server and not a mock resolver: hermod's resolver code is then tested the
//! way it runs, over the wire, including how hickory-resolver turns NXDOMAIN, empty
//! answers and null MX into errors.
//!
//! Names: every name is absolute (a trailing dot is optional) and must lie inside the
//! zone it is added to; `"@"` is shorthand for the zone origin. There are no relative
//! names, so `mx("example.test", 10, "mx1.example.test")` means what it says and an MX
//! exchange may sit in another zone. Queries for names under no zone get REFUSED, for
//! missing names inside a zone NXDOMAIN, for missing types NOERROR with no answer.
//!
//! ```ignore
//! let dns = TestDns::start(vec![
//!     TestZone::new("example.test")
//!         .mx("@", 10, "mx1.example.test")
//!         .a("mx1.example.test", Ipv4Addr::new(127, 0, 0, 11)),
//! ])
//! .await;
//! let resolver = MxResolver::new(&[dns.addr], Duration::from_secs(2))?;
//! ```

// Each test binary compiles this module and uses only some of it.
#![allow(dead_code)]

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;
use hickory_server::dnssec::NxProofKind;
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::proto::dnssec::crypto::EcdsaSigningKey;
use hickory_server::proto::dnssec::rdata::{DNSKEY, DNSSECRData};
use hickory_server::proto::dnssec::{
    Algorithm, DnsSecResult, DnssecSigner, PublicKeyBuf, SigningKey, TBS,
};
use hickory_server::proto::rr::rdata::tlsa::{CertUsage, Matching, Selector};
use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, MX, NS, SOA, TLSA, TXT};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use tokio::net::{TcpListener, UdpSocket};

/// TTL of every test record; short so nothing outlives a test in a shared cache.
const TTL: u32 = 60;

/// A running test DNS server. Dropping it stops it (its tasks are aborted);
/// [`TestDns::shutdown`] stops it gracefully.
pub struct TestDns {
    /// Where to send queries: UDP and TCP both listen here.
    pub addr: SocketAddr,
    /// The running server; `None` only after `shutdown`.
    server: Option<Server<Catalog>>,
}

impl TestDns {
    /// Starts a server for `zones` on a free loopback port. Panics when it cannot bind,
    /// which in a test is the clearest failure.
    pub async fn start(zones: Vec<TestZone>) -> TestDns {
        let mut catalog = Catalog::new();
        for zone in zones {
            let origin = LowerName::from(&zone.origin);
            catalog.upsert(
                origin,
                vec![Arc::new(zone.into_handler()) as Arc<dyn ZoneHandler>],
            );
        }
        let (udp, tcp) = bind_pair().await;
        let addr = udp
            .local_addr()
            .expect("local address of the test DNS socket");
        let mut server = Server::new(catalog);
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 64);
        TestDns {
            addr,
            server: Some(server),
        }
    }

    /// Stops the server and waits until its sockets are closed.
    pub async fn shutdown(mut self) {
        if let Some(mut server) = self.server.take() {
            // An error here only reports how a listener task ended; it is stopped either way.
            let _ = server.shutdown_gracefully().await;
        }
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            // Tell the tasks to stop; dropping the server's JoinSet then aborts them.
            server.shutdown_token().cancel();
        }
    }
}

/// Binds UDP on a random loopback port, then TCP on the same port; retries when another
/// process holds that TCP port.
async fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..20 {
        let udp = UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind a UDP socket for the test DNS server");
        let addr = udp.local_addr().expect("local address of the UDP socket");
        if let Ok(tcp) = TcpListener::bind(addr).await {
            return (udp, tcp);
        }
    }
    panic!("no loopback port free for both UDP and TCP after 20 tries");
}

/// A zone's DNSSEC key (ECDSA P-256, one key signing everything): the test makes one,
/// signs zones with it and gives hermod its DNSKEY as the trust anchor.
#[derive(Clone)]
pub struct ZoneKey {
    pkcs8: Vec<u8>,
    /// Every signature made with it is corrupted (a zone whose signatures are bogus).
    corrupt: bool,
}

impl ZoneKey {
    /// A new key.
    pub fn generate() -> ZoneKey {
        let pkcs8 = EcdsaSigningKey::generate_pkcs8(Algorithm::ECDSAP256SHA256)
            .expect("generate a zone key");
        ZoneKey {
            pkcs8: pkcs8.secret_pkcs8_der().to_vec(),
            corrupt: false,
        }
    }

    /// The same key, but every signature it makes has a flipped bit.
    pub fn corrupting(&self) -> ZoneKey {
        ZoneKey {
            corrupt: true,
            ..self.clone()
        }
    }

    fn signing_key(&self) -> EcdsaSigningKey {
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from(self.pkcs8.clone());
        EcdsaSigningKey::from_pkcs8(&der, Algorithm::ECDSAP256SHA256).expect("zone key")
    }

    /// The trust anchor file's line for a zone `origin` signed with this key.
    pub fn trust_anchor(&self, origin: &str) -> String {
        let dnskey = DNSKEY::from_key(&self.signing_key().to_public_key().expect("public key"));
        let record = Record::from_rdata(
            absolute(origin),
            TTL,
            RData::DNSSEC(DNSSECRData::DNSKEY(dnskey)),
        );
        format!("{record}\n")
    }
}

/// A signing key that corrupts what it signs.
struct Corrupting(EcdsaSigningKey);

impl SigningKey for Corrupting {
    fn sign(&self, tbs: &TBS) -> DnsSecResult<Vec<u8>> {
        let mut signature = self.0.sign(tbs)?;
        if let Some(last) = signature.last_mut() {
            *last ^= 1;
        }
        Ok(signature)
    }

    fn to_public_key(&self) -> DnsSecResult<PublicKeyBuf> {
        self.0.to_public_key()
    }

    fn algorithm(&self) -> Algorithm {
        self.0.algorithm()
    }
}

/// An in-memory zone under construction. The SOA record is added by the server.
#[derive(Clone)]
pub struct TestZone {
    origin: Name,
    records: Vec<Record>,
    keys: Vec<ZoneKey>,
}

impl TestZone {
    /// A zone for `origin` (e.g. `"example.test"`), with no records yet.
    pub fn new(origin: &str) -> Self {
        let origin = absolute(origin);
        TestZone {
            origin,
            records: Vec::new(),
            keys: Vec::new(),
        }
    }

    /// Signs the zone with `key` (DNSSEC, NSEC for denials) when it is served; called
    /// again, with one more key (every record set then has a signature by each, as
    /// during a key rollover).
    pub fn signed(mut self, key: &ZoneKey) -> Self {
        self.keys.push(key.clone());
        self
    }

    /// Adds `name TLSA usage selector matching data`.
    pub fn tlsa(self, name: &str, usage: u8, selector: u8, matching: u8, data: &[u8]) -> Self {
        let tlsa = TLSA::new(
            CertUsage::from(usage),
            Selector::from(selector),
            Matching::from(matching),
            data.to_vec(),
        );
        self.record(name, RData::TLSA(tlsa))
    }

    /// Adds `name MX pref exchange`.
    pub fn mx(self, name: &str, pref: u16, exchange: &str) -> Self {
        let exchange = absolute(exchange);
        self.record(name, RData::MX(MX::new(pref, exchange)))
    }

    /// Adds a null MX (`name MX 0 .`, RFC 7505): the domain accepts no mail.
    pub fn null_mx(self, name: &str) -> Self {
        self.record(name, RData::MX(MX::new(0, Name::root())))
    }

    /// Adds `name CNAME target`.
    pub fn cname(self, name: &str, target: &str) -> Self {
        let target = absolute(target);
        self.record(name, RData::CNAME(CNAME(target)))
    }

    /// Adds `name NS host` (a delegation to a zone served beside this one).
    pub fn ns(self, name: &str, host: &str) -> Self {
        let host = absolute(host);
        self.record(name, RData::NS(NS(host)))
    }

    /// Adds `name A ip`.
    pub fn a(self, name: &str, ip: Ipv4Addr) -> Self {
        self.record(name, RData::A(A(ip)))
    }

    /// Adds `name AAAA ip`.
    pub fn aaaa(self, name: &str, ip: Ipv6Addr) -> Self {
        self.record(name, RData::AAAA(AAAA(ip)))
    }

    /// Adds `name TXT text`, split into 255-byte strings as DNS requires (DKIM keys are
    /// longer than one string); readers join them back.
    pub fn txt(self, name: &str, text: &str) -> Self {
        let mut strings = Vec::new();
        let mut rest = text;
        while rest.len() > 255 {
            let mut cut = 255;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            strings.push(rest[..cut].to_owned());
            rest = &rest[cut..];
        }
        strings.push(rest.to_owned());
        self.record(name, RData::TXT(TXT::new(strings)))
    }

    /// Adds one record owned by `name` (`"@"` = the origin), which must be in this zone.
    fn record(mut self, name: &str, data: RData) -> Self {
        let owner = if name == "@" {
            self.origin.clone()
        } else {
            absolute(name)
        };
        assert!(
            self.origin.zone_of(&owner),
            "{owner} is outside the test zone {}",
            self.origin
        );
        self.records.push(Record::from_rdata(owner, TTL, data));
        self
    }

    /// The zone as hickory-server serves it, with an SOA at the origin.
    fn into_handler(self) -> InMemoryZoneHandler<TokioRuntimeProvider> {
        let mut zone = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
            self.origin.clone(),
            ZoneType::Primary,
            AxfrPolicy::Deny,
            (!self.keys.is_empty()).then_some(NxProofKind::Nsec),
        );
        let child = |label: &str| {
            Name::from_ascii(label)
                .and_then(|l| l.append_domain(&self.origin))
                .expect("SOA names under the test origin")
        };
        let soa = SOA::new(child("ns"), child("hostmaster"), 1, 3600, 600, 86_400, TTL);
        let soa = Record::from_rdata(self.origin.clone(), TTL, RData::SOA(soa));
        assert!(zone.upsert_mut(soa, 1), "SOA of {}", self.origin);
        for record in self.records {
            let text = record.to_string();
            assert!(zone.upsert_mut(record, 1), "record rejected: {text}");
        }
        for key in &self.keys {
            let signing = key.signing_key();
            let dnskey = DNSKEY::from_key(&signing.to_public_key().expect("public key"));
            let signing: Box<dyn SigningKey> = if key.corrupt {
                Box::new(Corrupting(signing))
            } else {
                Box::new(signing)
            };
            let signer = DnssecSigner::new(
                dnskey,
                signing,
                self.origin.clone(),
                Duration::from_secs(86_400),
            );
            zone.add_zone_signing_key_mut(signer)
                .expect("add the zone key");
        }
        if !self.keys.is_empty() {
            zone.secure_zone_mut().expect("sign the zone");
        }
        zone
    }
}

/// Parses a test name as absolute, whether or not it ends with a dot.
fn absolute(name: &str) -> Name {
    let mut n = Name::from_ascii(name).unwrap_or_else(|e| panic!("bad test name {name:?}: {e}"));
    n.set_fqdn(true);
    n
}
