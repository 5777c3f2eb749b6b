//! The harness's own servers start, answer on loopback and go away when dropped.

use galley_test_support::moto::MotoServer;
use galley_test_support::openbao::OpenBao;

#[tokio::test]
async fn moto_answers_and_stops_when_dropped() {
    let moto = MotoServer::start();
    let port = moto.port();
    let status =
        reqwest::get(format!("{}/moto-api/data.json", moto.endpoint())).await.expect("moto answers").status();
    assert!(status.is_success(), "moto's own API answered {status}");
    drop(moto);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "moto still listens after drop");
}

#[test]
fn openbao_dev_server_is_unsealed_with_kv_v2_and_the_cli_reaches_it() {
    let bao = OpenBao::dev();
    bao.bao(&["kv", "put", "secret/galley/shared", "identity.cookie_key=abc"]);
    let value = bao.bao(&["kv", "get", "-field=identity.cookie_key", "secret/galley/shared"]);
    assert_eq!(value.trim(), "abc");
}
