package deploy

import (
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/echopilot/echopilot/deploy/internal/check"
)

// Each CronJob rule can fail: one break of the clean audit-monitor render
// at a time.
func TestRejectsBrokenCronJob(t *testing.T) {
	repo := loadRepo(t)
	docs := renderDocs(t, filesys.MakeFsOnDisk(), "testdata/audit-monitor")
	if vs := check.Overlay(decode(t, docs), repo, policies["prod"]); len(vs) > 0 {
		t.Fatalf("testdata/audit-monitor is not clean to start with: %v", vs)
	}
	for _, tc := range []struct {
		name    string
		breakIt func(o *check.Objects, cj *batchv1.CronJob, ct *corev1.Container)
		want    string
	}{
		{"runs overlap", func(_ *check.Objects, cj *batchv1.CronJob, _ *corev1.Container) {
			cj.Spec.ConcurrencyPolicy = batchv1.AllowConcurrent
		}, "concurrencyPolicy must be Forbid"},
		{"no deadline", func(_ *check.Objects, cj *batchv1.CronJob, _ *corev1.Container) {
			cj.Spec.JobTemplate.Spec.ActiveDeadlineSeconds = nil
		}, "activeDeadlineSeconds is not set"},
		{"claim missing", func(o *check.Objects, _ *batchv1.CronJob, _ *corev1.Container) {
			o.PVCs = nil
		}, "PersistentVolumeClaim audit-monitor is not in the render"},
		{"writable root", func(_ *check.Objects, _ *batchv1.CronJob, ct *corev1.Container) {
			ct.SecurityContext.ReadOnlyRootFilesystem = nil
		}, "readOnlyRootFilesystem must be true"},
		{"privilege escalation", func(_ *check.Objects, _ *batchv1.CronJob, ct *corev1.Container) {
			ct.SecurityContext.AllowPrivilegeEscalation = nil
		}, "pod security restricted"},
		{"no limits", func(_ *check.Objects, _ *batchv1.CronJob, ct *corev1.Container) {
			ct.Resources.Limits = nil
		}, "no resources.limits.cpu"},
		{"latest image", func(_ *check.Objects, _ *batchv1.CronJob, ct *corev1.Container) {
			ct.Image = "echopilot/audit:latest"
		}, "uses the :latest tag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := decode(t, docs)
			cj := named(t, objs.CronJobs, "audit-monitor")
			tc.breakIt(objs, cj, &cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0])
			var got []string
			for _, v := range check.Overlay(objs, repo, policies["prod"]) {
				got = append(got, v.String())
			}
			if !slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, tc.want) }) {
				t.Errorf("not rejected with %q; got:\n%s", tc.want, strings.Join(got, "\n"))
			}
		})
	}
}
