# frozen_string_literal: true

require_relative "lib/karma/version"

Gem::Specification.new do |spec|
  spec.name = "karma-counters"
  spec.version = Karma::VERSION
  spec.summary = "Karma day-bucketed counters: the engine in-process or a pooled client, native (Rust)"
  spec.description = "Karma::Engine runs the Karma database inside the Ruby process; Karma::Client " \
                     "talks to a karma server. Also provides `require \"karma_client\"`, a drop-in for " \
                     "the karma_client gem."
  spec.license = "MIT"
  spec.authors = ["Karma contributors"]
  spec.required_ruby_version = ">= 3.0"
  spec.files = Dir["lib/**/*.rb", "src/**/*.rs", "Cargo.toml", "Rakefile", "README.md"]
  spec.require_paths = ["lib"]
  spec.extensions = ["Rakefile"]
end
