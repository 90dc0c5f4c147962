"""Building images from a Dockerfile: the front half that needs no runtime or store.

- `dockerfile`: reads a Dockerfile the way Docker's BuildKit frontend does (parser directives,
  continuations, heredocs, JSON and shell forms) into stages of typed instructions, each
  carrying its source lines; resolves FROM and COPY --from against stages and build args.
- `instructions`: the typed instructions, and the variable substitution each applies where
  Docker applies it (`Instruction.expand(env)`).
- `shellwords`: Docker's small shell-word lexer: quotes, the escape character, `$V`,
  `${V:-x}` and friends.
- `scope`: the ARGs and ENVs in scope at each instruction of a stage (what `$VAR` means
  there, what RUN's environment is, what the image keeps).
- `dockerignore`: `.dockerignore` patterns with Docker's matching rules.
- `context`: the build context: walking it through the ignore rules, resolving COPY/ADD
  sources (wildcards, escape refusal) and hashing what they select for the build cache.

The builder (which runs RUN in containers and commits layers) sits on top of these.
"""
