"""The optional custom domain: TLS 1.2+, mutual TLS only with a truststore, mapped to the API's stage."""

from __future__ import annotations

from pathlib import Path

from stepless.local.template import load_template

TEMPLATE = load_template(Path(__file__).resolve().parents[2] / "template.yaml")


def test_custom_domain_is_optional_and_mtls_needs_a_truststore() -> None:
    res = TEMPLATE["Resources"]
    domain = res["ApiDomain"]
    assert domain["Condition"] == "HasDomain" and res["ApiDomainMapping"]["Condition"] == "HasDomain"
    config = domain["Properties"]["DomainNameConfigurations"][0]
    assert config["SecurityPolicy"] == "TLS_1_2" and config["EndpointType"] == "REGIONAL"
    mtls = domain["Properties"]["MutualTlsAuthentication"]["Fn::If"]
    assert mtls[0] == "HasMtls" and mtls[2] == {"Ref": "AWS::NoValue"}
    assert mtls[1]["TruststoreUri"] == {"Ref": "TruststoreUri"}
    assert TEMPLATE["Conditions"]["HasMtls"]["Fn::And"][0] == {"Condition": "HasDomain"}
    mapping = res["ApiDomainMapping"]["Properties"]
    assert mapping["ApiId"] == {"Ref": "CaApi"} and mapping["Stage"] == "$default"
    for name in ("DomainName", "DomainCertificateArn", "TruststoreUri"):
        assert TEMPLATE["Parameters"][name]["Default"] == ""
