//! Where a client connection goes, and the local address (an egress source) it leaves
//! from: the TCP connection, bound first when a source is chosen.

use std::net::SocketAddr;

use tokio::net::TcpStream;

/// Where a connection goes, and the local address it leaves from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dial {
    /// The next hop's address.
    pub to: SocketAddr,
    /// The egress source's address to bind to; `None`: the system chooses.
    pub from: Option<std::net::IpAddr>,
}

impl Dial {
    /// A TCP connection from `from` (when set) to `to`.
    pub(super) async fn tcp(self) -> std::io::Result<TcpStream> {
        let Some(from) = self.from else {
            return TcpStream::connect(self.to).await;
        };
        if from.is_ipv4() != self.to.is_ipv4() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrNotAvailable,
                format!(
                    "source address {from} cannot reach an {} address",
                    match self.to {
                        SocketAddr::V4(_) => "IPv4",
                        SocketAddr::V6(_) => "IPv6",
                    }
                ),
            ));
        }
        let socket = match from {
            std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.bind(SocketAddr::new(from, 0))?;
        socket.connect(self.to).await
    }
}
