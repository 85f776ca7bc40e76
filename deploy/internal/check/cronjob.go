package check

import (
	batchv1 "k8s.io/api/batch/v1"
)

// cronJob holds a CronJob's pods to the rules of the Deployments' that do
// not concern serving: Pod Security restricted and our stricter security
// contexts, resources, pinned images, env that resolves; runs that never
// overlap (they share state); and claims that the render holds.
func (c *checker) cronJob(cj *batchv1.CronJob) {
	obj := "CronJob/" + cj.Name
	tmpl := &cj.Spec.JobTemplate.Spec.Template
	spec := &tmpl.Spec
	if cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		c.fail(obj, "concurrencyPolicy must be Forbid: two runs at once would share the job's state")
	}
	if cj.Spec.JobTemplate.Spec.ActiveDeadlineSeconds == nil {
		c.fail(obj, "jobTemplate.spec.activeDeadlineSeconds is not set: a hung run would block every later one")
	}
	c.podSecurity(obj, tmpl)
	c.securityContexts(obj, spec)
	for _, ct := range allContainers(spec) {
		c.resources(obj, ct)
		c.image(obj, ct)
		c.env(obj, cj.Namespace, *ct)
	}
	for _, v := range spec.Volumes {
		if v.PersistentVolumeClaim == nil {
			continue
		}
		found := false
		for _, pvc := range c.objs.PVCs {
			found = found || pvc.Namespace == cj.Namespace && pvc.Name == v.PersistentVolumeClaim.ClaimName
		}
		if !found {
			c.fail(obj, "volume %s: PersistentVolumeClaim %s is not in the render", v.Name, v.PersistentVolumeClaim.ClaimName)
		}
	}
}
