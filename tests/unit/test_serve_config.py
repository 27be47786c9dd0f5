"""serve_config.yaml is the one source of replica resources, queue limits and batching."""

from __future__ import annotations

import ast

from serve.config import CPU_RESOURCES, cpu_override, deployment_options, read_config

from conftest import REPO


def test_deployment_classes_carry_no_options():
    for module in ("embedder", "generator", "api"):
        tree = ast.parse((REPO / "serve" / f"{module}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for decorator in node.decorator_list:
                    text = ast.unparse(decorator)
                    if text.startswith("serve.deployment"):
                        assert text == "serve.deployment", (
                            f"{module}.{node.name}: {text} (options belong in serve_config.yaml)"
                        )
                    if text.startswith("serve.batch"):
                        raise AssertionError(f"{module}.{node.name}: {text}")
        batch = [
            ast.unparse(d) for n in ast.walk(tree) if isinstance(n, ast.AsyncFunctionDef) for d in n.decorator_list
        ]
        assert all(d == "serve.batch" for d in batch if d.startswith("serve.batch")), batch


def test_the_production_config_runs_the_default_model():
    """`make run` and `serve run serve_config.yaml` read their settings from the YAML's args: a new
    gallery made by the service uses the same model as one made on the command line."""
    from core.settings import Settings, read_yaml

    args = read_yaml(REPO / "serve_config.yaml")
    default = Settings()
    assert (args["detector"], args["embedder"]) == (default.detector, default.embedder) == ("scrfd", "arcface")
    assert Settings.from_mapping(args).embedder == "arcface"


def test_python_built_apps_take_the_yaml_values():
    config = read_config()
    options = deployment_options(config)
    entries = {d["name"]: d for d in config["applications"][0]["deployments"]}
    assert set(options) == set(entries) == {"Generator", "Embedder", "API"}
    assert options["Embedder"]["user_config"] == entries["Embedder"]["user_config"]
    assert options["Generator"]["max_queued_requests"] == entries["Generator"]["max_queued_requests"]
    for name, cpus in CPU_RESOURCES.items():
        assert options[name]["ray_actor_options"] == {
            **entries[name]["ray_actor_options"],
            "num_gpus": 0,
            "num_cpus": cpus,
        }
    gpu = deployment_options(config, cpu=False)
    assert gpu["Generator"]["ray_actor_options"]["num_gpus"] == 1
    assert cpu_override(config) != config and read_config() == config  # the override works on a copy
