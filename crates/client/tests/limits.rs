//! A call longer than the agent reads is refused by the client, before
//! anything is sent.

use std::time::Duration;

use openwua_client::ClientError;
use openwua_client::varlink::{Connection, MAX_CALL};
use tokio::net::UnixStream;

#[tokio::test]
async fn a_call_over_the_agent_s_limit_fails_here_with_invalid_argument() {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let mut connection = Connection::new(ours);
    let long = "x".repeat(MAX_CALL);
    // Nobody reads `theirs`: a call that were sent would block for ever.
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        connection.call::<_, serde_json::Value>("org.openwua.Agent.Search", &long),
    )
    .await
    .expect("refused without being sent");
    let error = result.unwrap_err();
    assert!(matches!(error, ClientError::InvalidArgument(_)), "{error}");
    assert_eq!(error.hresult(), openwua_model::hresult::E_INVALIDARG);
    let mut nothing = [0u8; 1];
    assert_eq!(
        theirs.try_read(&mut nothing).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "nothing was sent"
    );
}
