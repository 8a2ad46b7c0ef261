"""What the swarm unit tests share: compose's model of a stack (web and a proxy with an inline config) and the
same model with one part of the proxy changed. Imported by name: pytest runs with --import-mode=importlib, so
this module is tests.unit.deploy.swarm.conftest."""


def model() -> dict:
    return {
        "name": "production-control",
        "services": {
            "web": {"image": "r/app:1", "entrypoint": None, "tmpfs": ["/run", "/tmp:size=64m"],
                    "volumes": [{"type": "volume", "source": "data", "target": "/data"}]},
            "proxy": {"image": "haproxy", "ports": [{"mode": "host", "target": 8080, "published": "8000", "protocol": "tcp"}],
                      "configs": [{"source": "haproxy-swarm", "target": "/etc/haproxy.cfg"}]},
        },
        "configs": {"haproxy-swarm": {"content": "global\n"}},
    }


def changed_model(what: str) -> dict:
    changed = model()
    proxy = changed["services"]["proxy"]
    if what == "image":
        proxy["image"] = "haproxy:3.0.7"
    elif what == "config":
        changed["configs"]["haproxy-swarm"]["content"] = "global\n  maxconn 10\n"
    elif what == "port":
        proxy["ports"][0]["published"] = "8080"
    elif what == "definition":
        proxy["read_only"] = True
    return changed
