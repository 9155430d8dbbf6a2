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

#[tokio::test]
async fn a_connection_the_agent_closed_between_calls_is_made_again() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let (closed, first_closed) = tokio::sync::oneshot::channel();
    let agent = tokio::spawn(async move {
        // The first connection is closed as the agent closes an idle one.
        let (first, _) = listener.accept().await.unwrap();
        drop(first);
        closed.send(()).unwrap();
        let (mut second, _) = listener.accept().await.unwrap();
        let mut call = Vec::new();
        loop {
            let mut byte = [0u8; 1];
            tokio::io::AsyncReadExt::read_exact(&mut second, &mut byte)
                .await
                .unwrap();
            if byte[0] == 0 {
                break;
            }
            call.push(byte[0]);
        }
        tokio::io::AsyncWriteExt::write_all(&mut second, b"{\"parameters\":{\"answer\":42}}\0")
            .await
            .unwrap();
        String::from_utf8(call).unwrap()
    });
    let mut connection = Connection::connect(&socket).await.unwrap();
    first_closed.await.unwrap();
    let reply: serde_json::Value = connection
        .call("org.openwua.Agent.GetAgentInfo", &serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(reply["answer"], 42);
    assert!(agent.await.unwrap().contains("GetAgentInfo"));
}
