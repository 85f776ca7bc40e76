module github.com/echopilot/echopilot/services/tenancy

go 1.26

require (
	github.com/echopilot/echopilot/gen v0.0.0
	github.com/echopilot/echopilot/platform v0.0.0
)

replace (
	github.com/echopilot/echopilot/gen => ../../gen
	github.com/echopilot/echopilot/platform => ../../platform
)
