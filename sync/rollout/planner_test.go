package rollout

import (
	"testing"
)

// The scenarios, in the language scenario_test.go describes.
var scenarios = []struct{ name, script string }{
	{"a good rollout across four waves", `
		spec n=20 waves=5,25,50,100% max=5% min=5
		status running
		wave 0
		log created why=20_vehicles_in_4_waves_reaching_1_(5%),_5_(25%),_10_(50%),_20_(100%)
		plan deploy v01
		wave 1
		log wave_started wave=1
		outcome v01 sent
		outcome v02-v20 waiting
		at 1s
		ack v01 ok
		outcome v01 in_progress
		log accepted vehicle=v01
		plan -
		report v01 downloading
		report v01 trial
		outcome v01 in_progress
		plan -
		at 10s
		report v01 committed
		outcome v01 committed
		log committed vehicle=v01 wave=1
		plan deploy v02-v05
		log wave_finished wave=1 why=1_committed,_0_failed
		log wave_started wave=2
		reload
		at 20s
		ack v02-v05 ok
		report v02-v04 promoted
		plan -
		report v02-v05 committed
		plan deploy v06-v10
		reload
		report v06-v10 committed
		plan deploy v11-v20
		wave 4
		report v11-v20 committed
		status running
		plan -
		status done
		log wave_finished wave=4
		log done why=all_4_waves_finished:_20_committed,_0_failed
		finished yes
		count committed=20 failed=0 waiting=0
		pause fails
		resume fails
		abort fails
		`},
	{"20% of the fleet fails: the breaker halts wave 2, the first to cross 10%", `
		spec n=20 waves=5,25,50,100% max=10% min=5
		plan deploy v01
		report v01 committed
		plan deploy v02-v05
		# one vehicle in five fails; v05 is this wave's
		report v05 failed
		outcome v05 failed
		log failed vehicle=v05 why=reported_failed:_test_failed
		status running
		report v02-v03 committed
		status running
		report v04 committed
		status halted
		log breaker_tripped wave=2 why=1_of_5_outcomes_failed_(20%),_more_than_max-failures_10%
		plan -
		nolog wave_started wave=3
		outcome v06-v20 waiting
		sent v06 0
		count committed=4 failed=1 waiting=15
		finished yes
		resume fails
		pause fails
		reload
		status halted
		plan -
		`},
	{"20% fail under a 25% threshold: the rollout completes", `
		spec n=20 waves=5,25,50,100% max=25% min=5
		plan deploy v01
		report v01 committed
		plan deploy v02-v05
		report v02-v04 committed
		report v05 rolled_back
		plan deploy v06-v10
		report v06-v09 committed
		report v10 timed_out
		plan deploy v11-v20
		report v11-v14 committed
		report v15 refused
		report v16-v19 committed
		report v20 failed
		plan -
		status done
		count committed=16 failed=4
		nolog breaker_tripped
		`},
	{"the breaker trips in wave 3 when the failures cross the threshold there", `
		spec n=20 waves=5,25,50,100% max=15% min=5
		plan deploy v01
		report v01 committed
		plan deploy v02-v05
		report v02-v05 committed
		plan deploy v06-v10
		report v06-v07 committed
		report v08 failed
		# 1 of 8: 12.5%, under 15%
		status running
		report v09 failed
		# 2 of 9: 22%
		status halted
		log breaker_tripped wave=3 why=2_of_9_outcomes_failed
		report v10 committed
		plan -
		outcome v11-v20 waiting
		`},
	{"min-vehicles: no judgement before that many outcomes", `
		spec n=10 waves=10,100% max=5% min=3
		plan deploy v01
		report v01 failed
		# 1 failed of 1: 100%, but only 1 outcome of the 3 needed
		status running
		plan deploy v02-v10
		log wave_finished wave=1 why=0_committed,_1_failed
		report v02 committed
		status running
		report v03 committed
		status halted
		log breaker_tripped wave=2 why=judged_from_3_outcomes,_min-vehicles_3
		`},
	{"min-vehicles 1: the first failure trips a 5% breaker", `
		spec n=10 waves=10,100% max=5% min=1
		plan deploy v01
		report v01 refused
		status halted
		log breaker_tripped wave=1
		plan -
		outcome v02-v10 waiting
		`},
	{"pause holds the next wave and resends; resume lets them go", `
		spec n=10 waves=10,50,100% max=50% min=1 resend=1m
		plan deploy v01
		pause
		status paused
		log paused
		pause fails
		report v01 committed
		plan -
		wave 1
		outcome v02-v05 waiting
		at 2m
		plan -
		resume
		status running
		log resumed
		resume fails
		plan deploy v02-v05
		log wave_finished wave=1
		# the breaker judges a paused rollout too
		pause
		report v02-v05 failed
		status halted
		resume fails
		plan -
		`},
	{"abort with rollback: model-rollback to those that may hold the bundle", `
		spec n=10 waves=10,50,100% max=50% min=5 resend=1m
		plan deploy v01
		report v01 committed
		plan deploy v02-v05
		ack v02 ok
		report v02 committed
		report v03 trial
		report v04 failed
		ack v05 bad_args
		outcome v05 failed
		log failed vehicle=v05 why=model-deploy_refused:
		status running
		abort rollback
		status aborted
		log aborted why=model-rollback_goes_to_the_3_vehicles
		finished no
		plan rollback v01 v02 v03
		plan -
		rack v01 ok
		rack v02 ok
		rack v03 none
		log rollback_answer vehicle=v03 why=not_taken
		finished no
		at 30s
		plan -
		at 61s
		plan rollback v03
		rack v03 busy
		at 2m2s
		plan rollback v03
		at 3m3s
		plan -
		log rollback_answer vehicle=v03 why=given_up
		finished yes
		outcome v06-v10 waiting
		abort fails
		abort rollback fails
		`},
	{"abort without rollback sends nothing more", `
		spec n=4 waves=50,100% max=50% min=1
		plan deploy v01 v02
		abort
		status aborted
		finished yes
		report v01 committed
		plan -
		outcome v03-v04 waiting
		`},
	{"a finished rollout may be aborted only to roll it back", `
		spec n=2 waves=100% max=50% min=1
		plan deploy v01 v02
		report v01-v02 committed
		plan -
		status done
		abort fails
		abort rollback
		plan rollback v01 v02
		rack v01-v02 ok
		finished yes
		`},
	{"resends, refusals and the vehicle timeout", `
		spec n=4 waves=25,100% max=100% min=1 resend=1m timeout=10m
		plan deploy v01
		ack v01 none
		log no_answer vehicle=v01
		at 59s
		plan -
		at 60s
		plan deploy v01
		sent v01 2
		log resend vehicle=v01
		ack v01 busy
		at 2m
		plan deploy v01
		ack v01 ok
		at 5m
		plan -
		report v01 trial
		at 10m
		# v01 times out, which finishes wave 1
		plan deploy v02-v04
		outcome v01 failed
		log failed vehicle=v01 why=timed_out:_no_outcome_within_vehicle-timeout_10m0s
		ack v02 rejected
		outcome v02 failed
		ack v03 unsafe_while_moving
		outcome v03 sent
		report v04 downloading
		ack v04 failed
		outcome v04 in_progress
		at 11m
		plan deploy v03
		sent v03 2
		sent v04 1
		report v03 committed
		report v04 committed
		plan -
		status done
		count committed=2 failed=2
		`},
	{"reports of other deployments: only committed counts", `
		spec n=4 waves=50,100% max=0% min=1
		report v03 committed foreign
		outcome v03 committed
		log committed vehicle=v03 why=before_its_wave
		report v04 trial foreign
		outcome v04 waiting
		plan deploy v01 v02
		report v01 failed foreign
		outcome v01 sent
		report v01 failed none
		outcome v01 sent
		status running
		report v01 committed own
		report v02 committed
		plan deploy v04
		sent v03 0
		report v04 committed
		plan -
		status done
		`},
}

func TestScenarios(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) { runScenario(t, sc.script) })
	}
}
