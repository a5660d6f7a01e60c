"""GitHubSecrets: the Actions secret ``HF_TOKEN`` and the non-secret Actions variables CI reads.

Who owns what (two stacks share one repository):
- environment-scoped values (``HF_TOKEN`` as an environment secret; ``MODEL_BUCKET``,
  ``MODEL_STORE_ENDPOINT``, ``MODEL_PREFIX`` as environment variables) belong to the stack whose
  ``githubEnvironments`` lists that environment;
- repository-level values (the ``HF_TOKEN`` secret read by jobs outside an environment,
  ``REGISTRY`` and ``IMAGE_REPOSITORY``) belong to ONE stack: prod, or a stack that lists no
  environment (see :func:`owns_repository_level`). Otherwise destroying dev would delete the
  secret prod's CI uses.

The GitHub environments themselves are not created here: their protection rules (required
reviewers for prod) are set in the repository settings, and a Pulumi-made environment would
reset them. Create them first; an environment secret in a missing environment fails with 404.

The GitHub provider is explicit and pinned to the configured owner, so the token in
``GITHUB_TOKEN`` can never write to whatever owner it happens to default to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import pulumi
import pulumi_github as github

from components.config.patterns import github_repository_problem

HF_TOKEN_SECRET_NAME: Final = "HF_TOKEN"
_VARIABLE = re.compile(r"[A-Z_][A-Z0-9_]*")
_ENVIRONMENT = re.compile(r"[A-Za-z0-9._-]{1,255}")


@dataclass
class GitHubSecretsArgs:
    owner: str
    repository: str
    """The repository's name (not owner/name)."""
    hf_token: pulumi.Input[str]
    environments: tuple[str, ...] = ()
    repository_variables: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    environment_variables: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    manage_repository_level: bool = True
    """Create the repository-level secret and variables (one stack per repository should)."""


def owns_repository_level(environment: str, environments: tuple[str, ...]) -> bool:
    """Whether a stack owns the repository-level secret and variables (prod, or no environments)."""
    return environment == "prod" or not environments


def validate(args: GitHubSecretsArgs) -> None:
    problems = []
    if why := github_repository_problem(args.owner, args.repository):
        problems.append(f"{why} (give the repository's name, not owner/name)")
    for env in args.environments:
        if not _ENVIRONMENT.fullmatch(env):
            problems.append(f"environment {env!r} is not a GitHub environment name")
    for name in (*args.repository_variables, *args.environment_variables):
        if not _VARIABLE.fullmatch(name) or name.startswith("GITHUB_"):
            problems.append(f"Actions variable name {name!r}: upper case, digits and '_', not starting "
                            "with GITHUB_")
    if problems:
        raise ValueError("GitHubSecrets: " + "; ".join(problems))


class GitHubSecrets(pulumi.ComponentResource):
    """``HF_TOKEN`` as an Actions secret (repository and per environment) plus Actions variables."""

    repository: str
    secret_names: list[str]

    def __init__(self, name: str, args: GitHubSecretsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        validate(args)
        super().__init__("gpu-platform:index:GitHubSecrets", name, None, opts)
        self.provider = github.Provider(f"{name}-provider", owner=args.owner,
                                        opts=pulumi.ResourceOptions(parent=self))
        child = pulumi.ResourceOptions(parent=self, provider=self.provider)
        token = pulumi.Output.secret(args.hf_token)
        repo = args.repository

        self.secrets: list[pulumi.CustomResource] = []
        self.variables: list[pulumi.CustomResource] = []
        if args.manage_repository_level:
            self.secrets.append(github.ActionsSecret(
                f"{name}-hf-token", repository=repo, secret_name=HF_TOKEN_SECRET_NAME, value=token, opts=child,
            ))
            for var, value in sorted(args.repository_variables.items()):
                self.variables.append(github.ActionsVariable(
                    f"{name}-var-{var.lower().replace('_', '-')}", repository=repo, variable_name=var, value=value, opts=child,
                ))
        for env in args.environments:
            self.secrets.append(github.ActionsEnvironmentSecret(
                f"{name}-{env}-hf-token", repository=repo, environment=env,
                secret_name=HF_TOKEN_SECRET_NAME, value=token, opts=child,
            ))
            for var, value in sorted(args.environment_variables.items()):
                self.variables.append(github.ActionsEnvironmentVariable(
                    f"{name}-{env}-var-{var.lower().replace('_', '-')}", repository=repo, environment=env,
                    variable_name=var, value=value, opts=child,
                ))

        self.repository = f"{args.owner}/{repo}"
        self.secret_names = [HF_TOKEN_SECRET_NAME] if self.secrets else []
        self.register_outputs({"repository": self.repository, "secretNames": self.secret_names})
